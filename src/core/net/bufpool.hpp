// Fixed-size read buffers recycled across connections; larger buffers (a long request head) come from
// the heap and go back to it.
#pragma once

#include <cstdint>
#include <vector>

namespace luath::net {

class BufPool {
public:
    explicit BufPool(std::uint32_t size = 16384, std::size_t keep = 1024) : size_(size), keep_(keep) {}
    ~BufPool();
    BufPool(const BufPool&) = delete;
    BufPool& operator=(const BufPool&) = delete;

    std::uint32_t size() const { return size_; }
    char* get();                              // a buffer of size() bytes
    void put(char* p, std::uint32_t cap);     // return a buffer of capacity cap (any size)

private:
    std::uint32_t size_;
    std::size_t keep_;
    std::vector<char*> free_;
};

}  // namespace luath::net
