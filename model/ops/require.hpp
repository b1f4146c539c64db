// The ops' argument check (internal to model/ops): a bad tensor argument is an
// Error "bad_tensor_argument" with the message of the failed condition.
#pragma once

#include <string>

#include "pasteflow/core/error.hpp"

namespace pasteflow::model::ops::detail {

inline void require(bool ok, const std::string& message) {
  if (!ok) throw Error("bad_tensor_argument", message);
}

}  // namespace pasteflow::model::ops::detail
