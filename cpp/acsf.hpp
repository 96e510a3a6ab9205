// Forwarding header: the public header is cpp/include/alip/acsf.hpp (#include <alip/acsf.hpp>).
// This path keeps builds that put only cpp/ on the include path working
// (tests/test_cuda.py, cuda/ builds by hand, code that includes "acsf.hpp").
#pragma once
#include "include/alip/acsf.hpp"
