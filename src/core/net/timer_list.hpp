// An intrusive list of connections waiting on one kind of timeout. Every entry of a list has the same
// timeout, so appending at the tail keeps the list sorted by deadline: arming, re-arming and cancelling
// are O(1), and one periodic sweep pops expired entries from the head.
#pragma once

#include <cstdint>

namespace luath::net {

struct TimerNode {
    TimerNode* prev = nullptr;
    TimerNode* next = nullptr;
    std::uint64_t deadline = 0;
    struct TimerList* list = nullptr;
    void* owner = nullptr;
};

struct TimerList {
    TimerNode* head = nullptr;
    TimerNode* tail = nullptr;

    void push(TimerNode* n, std::uint64_t deadline) {
        if (n->list) n->list->remove(n);
        n->deadline = deadline;
        n->list = this;
        n->next = nullptr;
        n->prev = tail;
        if (tail) tail->next = n; else head = n;
        tail = n;
    }
    void remove(TimerNode* n) {
        if (n->list != this) return;
        if (n->prev) n->prev->next = n->next; else head = n->next;
        if (n->next) n->next->prev = n->prev; else tail = n->prev;
        n->prev = n->next = nullptr;
        n->list = nullptr;
    }
    bool empty() const { return head == nullptr; }
};

}  // namespace luath::net
