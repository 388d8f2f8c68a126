#include "http/uri.hpp"

namespace luath::http {

namespace {
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string_view percent_decode(std::string_view path, std::string& scratch) {
    if (path.find('%') == std::string_view::npos) return path;
    scratch.clear();
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] == '%' && i + 2 < path.size()) {
            int hi = hexval(path[i + 1]), lo = hexval(path[i + 2]);
            if (hi >= 0 && lo >= 0) {
                scratch.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        scratch.push_back(path[i]);
    }
    return scratch;
}

}  // namespace luath::http
