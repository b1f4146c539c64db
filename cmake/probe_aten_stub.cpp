// Configure-time probe (cmake/AtenStub.cmake): links a call of ATen's
// upsample_bilinear2d dispatch stub with a guessed set of HAVE_*_CPU_DEFINITION
// macros; it links only when the guess matches how LibTorch was built.
#include <ATen/ATen.h>
#include <ATen/native/UpSample.h>

int main() {
  at::Tensor in = at::zeros({1, 1, 2, 2});
  at::Tensor out = at::empty({1, 1, 3, 3});
  at::native::upsample_bilinear2d_kernel(c10::DeviceType::CPU, out, in, false, c10::nullopt, c10::nullopt);
  return 0;
}
