// --threads N: a pool of Python threads that run the WSGI application, so that an app that blocks
// (sleeps, waits on a database) does not stall every connection of its worker.
//
// The loop thread parses the request and builds the environ (it holds the GIL for that anyway), then
// hands the exchange to a pool thread: Connection::detach_to_thread() stops the socket's watcher and
// timers, so the thread owns the connection. The thread calls the app, reads the body and writes the
// response with the connection's blocking paths (poll() timeouts stand in for the body and write
// timeouts), tries one non-blocking write of what is queued, and hands the connection back through a
// mutex-protected list and an eventfd the loop polls. The loop then finishes the response (flushes the rest,
// keep-alive, the next pipelined request, or closing).
//
// What a pool thread touches that the loop also uses: the handler's free lists and the access log
// (Python objects, only with the GIL held), the Date line (a per-thread cache), Server::stopping()
// (atomic), OutQueue owners (released with PyGILState). Everything else of the server stays on the
// loop thread: read buffers are never taken or returned by a thread (the connection keeps the one it
// has), timers, counters, max_requests and the graceful stop.
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include <condition_variable>
#include <cstdio>
#include <csignal>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "wsgi/handler.hpp"

namespace luath::wsgi {

struct Handler::Pool {
    explicit Pool(Handler& h) : handler(h) {}

    Handler& handler;
    pthread_t loop_thread = pthread_self();
    std::mutex mu;
    std::condition_variable cv;
    Exchange* jobs_head = nullptr;  // waiting for a thread (mu)
    Exchange* jobs_tail = nullptr;
    Exchange* done_head = nullptr;  // finished, waiting for the loop (mu)
    Exchange* done_tail = nullptr;
    bool quit = false;              // (mu)
    std::vector<std::thread> threads;
    // The threads wake the loop through an eventfd it polls (written only when the done list was
    // empty). Not uv_async_t: its callback spins while a thread is inside uv_async_send, which a
    // preempted thread turns into a busy wait of the loop.
    int wake_fd = -1;
    uv_poll_t wake{};
    std::size_t busy = 0;           // exchanges out in threads (loop thread only)

    void run(unsigned index);
    void wake_loop();
    static void on_wake(uv_poll_t* h, int status, int events);
};

void Handler::Pool::wake_loop() {
    const std::uint64_t one = 1;
    while (::write(wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

// One pool thread: its own Python thread state, the GIL only while Python runs.
void Handler::Pool::run(unsigned index) {
    char name[16];
    std::snprintf(name, sizeof name, "luath-wsgi-%u", index);
    pthread_setname_np(pthread_self(), name);
    PyGILState_STATE g = PyGILState_Ensure();
    // threading.current_thread().name (log records' threadName) says what the thread is, not "Dummy-N".
    {
        py::Ref mod = py::Ref::steal(PyImport_ImportModule("threading"));
        py::Ref cur = mod ? py::Ref::steal(PyObject_CallMethod(mod.get(), "current_thread", nullptr)) : py::Ref();
        py::Ref str = py::Ref::steal(PyUnicode_FromString(name));
        if (!cur || !str || PyObject_SetAttrString(cur.get(), "name", str.get()) < 0) PyErr_Clear();
    }
    PyThreadState* ts = PyEval_SaveThread();
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
        while (!jobs_head && !quit) cv.wait(lk);
        if (!jobs_head) break;
        Exchange* ex = jobs_head;
        jobs_head = ex->next_job;
        if (!jobs_head) jobs_tail = nullptr;
        ex->next_job = nullptr;
        lk.unlock();

        PyEval_RestoreThread(ts);
        handler.run_in_thread(*ex);
        ts = PyEval_SaveThread();
        ex->conn->thread_flush();  // most responses leave from here; the loop sends what is left

        lk.lock();
        if (done_tail) {
            done_tail->next_job = ex;  // the loop has a wakeup coming and takes this one too
            done_tail = ex;
        } else {
            done_head = done_tail = ex;
            wake_loop();
        }
    }
    lk.unlock();
    PyEval_RestoreThread(ts);
    PyGILState_Release(g);
}

void Handler::Pool::on_wake(uv_poll_t* h, int, int) {
    auto* p = static_cast<Pool*>(h->data);
    std::uint64_t n;  // reset the counter first: a thread that finds the list empty after the swap below
                      // writes again, and a spurious wakeup finds an empty list
    while (::read(p->wake_fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
    Exchange* list;
    {
        std::lock_guard<std::mutex> lk(p->mu);
        list = p->done_head;
        p->done_head = p->done_tail = nullptr;
    }
    while (list) {
        Exchange* ex = list;
        list = ex->next_job;
        ex->next_job = nullptr;
        --p->busy;
        ex->conn->thread_returned();  // may close the connection (ex is then recycled) or dispatch again
    }
    // Busy threads keep the loop alive (their connections have no active handle while detached).
    if (p->busy == 0) uv_unref(reinterpret_cast<uv_handle_t*>(&p->wake));
}

void Handler::submit(Exchange& ex) {
    Pool& p = *pool_;
    ex.conn->detach_to_thread();
    if (p.busy++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&p.wake));
    {
        std::lock_guard<std::mutex> lk(p.mu);
        if (p.jobs_tail) p.jobs_tail->next_job = &ex;
        else p.jobs_head = &ex;
        p.jobs_tail = &ex;
    }
    p.cv.notify_one();
}

Handler::Handler(Options opts) : opts_(std::move(opts)), keys_(512) {}

Handler::~Handler() {
    for (ConnData* d : free_data_) delete d;
    for (PyObject* o : free_sr_) Py_DECREF(o);
    for (PyObject* o : free_input_) Py_DECREF(o);
}

bool Handler::on_loop_thread() const { return pthread_equal(pthread_self(), pool_->loop_thread) != 0; }

bool Handler::start_pool(uv_loop_t* loop, unsigned n) {
    if (n <= 1) return true;
    pool_ = std::make_unique<Pool>(*this);
    Pool& p = *pool_;
    p.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int r = p.wake_fd < 0 ? -errno : uv_poll_init(loop, &p.wake, p.wake_fd);
    if (r == 0) r = uv_poll_start(&p.wake, UV_READABLE, &Pool::on_wake);
    if (r < 0) {
        if (p.wake_fd >= 0) ::close(p.wake_fd);
        pool_.reset();
        PyErr_Format(PyExc_OSError, "cannot make the thread pool's wakeup: %s", uv_strerror(r));
        return false;
    }
    p.wake.data = &p;
    uv_unref(reinterpret_cast<uv_handle_t*>(&p.wake));
    // The threads never take the process's signals: they belong to the loop thread (libuv's handlers,
    // Python's main thread).
    sigset_t block, old;
    sigemptyset(&block);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU, SIGALRM,
                  SIGWINCH, SIGPIPE})
        sigaddset(&block, s);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    try {
        p.threads.reserve(n);
        for (unsigned i = 0; i < n; ++i) p.threads.emplace_back([&p, i] { p.run(i + 1); });
    } catch (const std::system_error& e) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        PyErr_Format(PyExc_OSError, "cannot start %u threads: %s", n, e.what());
        stop_pool();
        return false;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return true;
}

// Loop thread, GIL held, after the loop ended (no exchange is out in a thread any more).
void Handler::stop_pool() {
    if (!pool_) return;
    Pool& p = *pool_;
    {
        std::lock_guard<std::mutex> lk(p.mu);
        p.quit = true;
    }
    p.cv.notify_all();
    Py_BEGIN_ALLOW_THREADS
    for (std::thread& t : p.threads) t.join();
    Py_END_ALLOW_THREADS
    p.threads.clear();
    // The handle's memory must outlive its close: the pool stays until the handler goes.
    uv_poll_stop(&p.wake);
    uv_close(reinterpret_cast<uv_handle_t*>(&p.wake), [](uv_handle_t* h) {
        ::close(static_cast<Pool*>(h->data)->wake_fd);
    });
}

}  // namespace luath::wsgi
