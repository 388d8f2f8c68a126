// Request-target helpers with no Python: percent-decoding of a path.
#pragma once

#include <string>
#include <string_view>

namespace luath::http {

// The path with %XX escapes decoded (invalid escapes kept as sent). Returns `path` itself when it has
// no '%', else a view of `scratch`.
std::string_view percent_decode(std::string_view path, std::string& scratch);

}  // namespace luath::http
