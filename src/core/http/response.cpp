#include "http/response.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <string>

namespace luath::http {

namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct ByteClass {
    bool token[256] = {};
    bool value[256] = {};
    constexpr ByteClass() {
        for (int c = '0'; c <= '9'; ++c) token[c] = true;
        for (int c = 'a'; c <= 'z'; ++c) token[c] = true;
        for (int c = 'A'; c <= 'Z'; ++c) token[c] = true;
        for (char c : std::string_view("!#$%&'*+-.^_`|~")) token[static_cast<unsigned char>(c)] = true;
        value[static_cast<unsigned char>('\t')] = true;
        for (int c = 0x20; c < 0x7f; ++c) value[c] = true;
        for (int c = 0x80; c < 0x100; ++c) value[c] = true;
    }
};
constexpr ByteClass kClass;

struct CannedText {
    std::string head;
    std::string body;
    Canned view() const { return {head, body}; }
};

CannedText build_response(int status, std::string_view reason, std::string_view body) {
    char head[160];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %.*s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n",
                          status, static_cast<int>(reason.size()), reason.data(), body.size());
    return {std::string(head, static_cast<std::size_t>(n)), std::string(body)};
}

}  // namespace

void DateCache::format(std::time_t now) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    int n = std::snprintf(buf_, sizeof buf_, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                          kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900,
                          tm.tm_hour, tm.tm_min, tm.tm_sec);
    len_ = n > 0 ? static_cast<std::size_t>(n) : 0;
    when_ = now;
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 101: return "Switching Protocols";
        case 103: return "Early Hints";
        case 200: return "OK";
        case 201: return "Created";
        case 202: return "Accepted";
        case 203: return "Non-Authoritative Information";
        case 204: return "No Content";
        case 205: return "Reset Content";
        case 206: return "Partial Content";
        case 207: return "Multi-Status";
        case 300: return "Multiple Choices";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 303: return "See Other";
        case 304: return "Not Modified";
        case 307: return "Temporary Redirect";
        case 308: return "Permanent Redirect";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 402: return "Payment Required";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 411: return "Length Required";
        case 412: return "Precondition Failed";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 417: return "Expectation Failed";
        case 418: return "I'm a teapot";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Content";
        case 425: return "Too Early";
        case 426: return "Upgrade Required";
        case 428: return "Precondition Required";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 451: return "Unavailable For Legal Reasons";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        default: return "";
    }
}

std::size_t format_chunk_size(char* out, std::uint64_t n) {
    static constexpr char hex[] = "0123456789abcdef";
    char tmp[16];
    std::size_t len = 0;
    do {
        tmp[len++] = hex[n & 0xf];
        n >>= 4;
    } while (n);
    for (std::size_t i = 0; i < len; ++i) out[i] = tmp[len - 1 - i];
    out[len] = '\r';
    out[len + 1] = '\n';
    return len + 2;
}

std::size_t format_decimal(char* out, std::uint64_t n) {
    char tmp[20];
    std::size_t len = 0;
    do {
        tmp[len++] = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n);
    for (std::size_t i = 0; i < len; ++i) out[i] = tmp[len - 1 - i];
    return len;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (!kClass.token[c]) return false;
    return true;
}

bool is_safe_field_value(std::string_view s) {
    for (unsigned char c : s)
        if (!kClass.value[c]) return false;
    return true;
}

bool is_valid_status(std::string_view s) {
    if (s.size() < 4 || s[3] != ' ') return false;
    for (int i = 0; i < 3; ++i)
        if (s[i] < '0' || s[i] > '9') return false;
    if (s[0] == '0') return false;
    return is_safe_field_value(s.substr(4));
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return false;
    }
    return true;
}

Canned error_response(Error e) {
    static std::array<CannedText, 64> cache;
    auto& slot = cache[static_cast<std::size_t>(e) % cache.size()];
    if (slot.head.empty()) {
        ErrorInfo info = error_info(e);
        std::string body(info.detail);
        body.push_back('\n');
        slot = build_response(info.status, info.reason, body);
    }
    return slot.view();
}

Canned canned_response(int status) {
    static const CannedText r500 = build_response(500, "Internal Server Error", "Internal Server Error\n");
    static const CannedText r503 = build_response(503, "Service Unavailable", "Service Unavailable\n");
    return status == 503 ? r503.view() : r500.view();
}

}  // namespace luath::http
