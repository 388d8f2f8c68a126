#include "net/bufpool.hpp"

#include <cstdlib>

namespace luath::net {

BufPool::~BufPool() {
    for (char* p : free_) std::free(p);
}

char* BufPool::get() {
    if (!free_.empty()) {
        char* p = free_.back();
        free_.pop_back();
        return p;
    }
    return static_cast<char*>(std::malloc(size_));
}

void BufPool::put(char* p, std::uint32_t cap) {
    if (!p) return;
    if (cap == size_ && free_.size() < keep_) {
        free_.push_back(p);
        return;
    }
    std::free(p);
}

}  // namespace luath::net
