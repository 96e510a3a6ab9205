// Forwarding header: the public header is cpp/include/alip/neighbors.hpp (#include <alip/neighbors.hpp>).
// This path keeps builds that put only cpp/ on the include path working
// (tests/test_cuda.py, cuda/ builds by hand, code that includes "neighbors.hpp").
#pragma once
#include "include/alip/neighbors.hpp"
