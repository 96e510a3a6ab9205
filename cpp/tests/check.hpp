// A minimal test harness for the C++ core (no dependencies): TEST_CASE registers a
// function, CHECK / CHECK_CLOSE / CHECK_THROWS record failures and go on, run_all()
// runs every case (or those whose name contains argv[1]) and returns the exit status.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace check {

struct Case {
    const char* name;
    void (*fn)();
};

inline std::vector<Case>& registry() {
    static std::vector<Case> cases;
    return cases;
}

struct Register {
    Register(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline int& failures_in_case() {
    static int n = 0;
    return n;
}

inline void fail(const char* file, int line, const std::string& what) {
    ++failures_in_case();
    if (failures_in_case() <= 10) std::fprintf(stderr, "  %s:%d: FAILED %s\n", file, line, what.c_str());
}

inline int run_all(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : "";
    int failed = 0, ran = 0;
    for (const Case& c : registry()) {
        if (std::strstr(c.name, filter) == nullptr) continue;
        failures_in_case() = 0;
        try {
            c.fn();
        } catch (const std::exception& e) {
            fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
        }
        ++ran;
        std::fprintf(stderr, "[%s] %s\n", failures_in_case() ? "FAIL" : " ok ", c.name);
        failed += failures_in_case() ? 1 : 0;
    }
    std::fprintf(stderr, "%d of %d test cases failed\n", failed, ran);
    return (failed || ran == 0) ? 1 : 0;
}

}  // namespace check

#define CHECK_CAT_(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT_(a, b)
#define TEST_CASE(name)                                              \
    static void name();                                              \
    static const check::Register CHECK_CAT(reg_, name)(#name, name); \
    static void name()

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

/// |a - b| <= tol (absolute), reporting both values.
#define CHECK_CLOSE(a, b, tol)                                                                                        \
    do {                                                                                                              \
        const double check_a_ = (a), check_b_ = (b);                                                                  \
        if (!(std::abs(check_a_ - check_b_) <= (tol)))                                                                \
            check::fail(__FILE__, __LINE__,                                                                           \
                        std::string(#a " = ") + std::to_string(check_a_) + ", " #b " = " + std::to_string(check_b_) + \
                            ", |diff| = " + std::to_string(std::abs(check_a_ - check_b_)));                           \
    } while (0)

/// `expr` throws `type` whose what() contains `needle`.
#define CHECK_THROWS(type, expr, needle)                                                                \
    do {                                                                                                \
        bool check_thrown_ = false;                                                                     \
        try {                                                                                           \
            (void)(expr);                                                                               \
        } catch (const type& e) {                                                                       \
            check_thrown_ = true;                                                                       \
            if (std::strstr(e.what(), needle) == nullptr)                                               \
                check::fail(__FILE__, __LINE__,                                                         \
                            std::string(#expr " threw '") + e.what() + "', expected '" + needle + "'"); \
        }                                                                                               \
        if (!check_thrown_) check::fail(__FILE__, __LINE__, #expr " did not throw " #type);             \
    } while (0)
