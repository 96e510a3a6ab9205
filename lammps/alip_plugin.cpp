// Registers pair_style alip and compute alip/atom with LAMMPS's plugin loader
// (`plugin load libalip_lammps.so`). The layout of lammpsplugin_t follows LAMMPS's
// documented plugin ABI (src/PLUGIN/lammpsplugin.h, unchanged since 2021); the wheel
// does not ship that header, so it is declared here.
#include "compute_alip_atom.h"
#include "lammps.h"
#include "pair_alip.h"

extern "C" {
typedef void* (lammpsplugin_factory1)(void*);
typedef void* (lammpsplugin_factory2)(void*, int, char**);
typedef struct {
    const char* version;
    const char* style;
    const char* name;
    const char* info;
    const char* author;
    union {
        lammpsplugin_factory1* v1;
        lammpsplugin_factory2* v2;
    } creator;
    void* handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t*, void*);
void lammpsplugin_init(void* lmp, void* handle, void* regfunc);
}

using namespace LAMMPS_NS;

static Pair* create_pair(LAMMPS* lmp) { return new PairAlip(lmp); }
static Compute* create_compute(LAMMPS* lmp, int narg, char** arg) { return new ComputeAlipAtom(lmp, narg, arg); }

extern "C" void lammpsplugin_init(void* lmp, void* handle, void* regfunc) {
    auto reg = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
    lammpsplugin_t plugin;
    plugin.version = static_cast<LAMMPS*>(lmp)->version;  // built for this version's headers
    plugin.author = "alip";
    plugin.handle = handle;

    plugin.style = "pair";
    plugin.name = "alip";
    plugin.info = "alip committee of Behler-Parrinello networks (ACSF), mean energy/forces/virial";
    plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1*>(&create_pair);
    reg(&plugin, lmp);

    plugin.style = "compute";
    plugin.name = "alip/atom";
    plugin.info = "per-atom committee force deviation of pair_style alip";
    plugin.creator.v2 = reinterpret_cast<lammpsplugin_factory2*>(&create_compute);
    reg(&plugin, lmp);
}
