// Forwarding header: the public header is cpp/include/alip/structure.hpp (#include <alip/structure.hpp>).
// This path keeps builds that put only cpp/ on the include path working
// (tests/test_cuda.py, cuda/ builds by hand, code that includes "structure.hpp").
#pragma once
#include "include/alip/structure.hpp"
