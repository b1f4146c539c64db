// What the CPU this process runs on can do, for choices that depend on it
// (model/precision.hpp: whether bf16 autocast pays off).
#pragma once

namespace pasteflow {

/// Whether this CPU computes bf16 natively: the avx512_bf16 or amx_bf16
/// flag of /proc/cpuinfo (Intel Cooper Lake, Sapphire Rapids and later;
/// AMD Zen 4 and later). Elsewhere oneDNN emulates bf16, slower than fp32.
/// False when /proc/cpuinfo cannot be read.
bool cpu_has_native_bf16();

}  // namespace pasteflow
