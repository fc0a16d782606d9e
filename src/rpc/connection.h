// One TCP connection carrying ONC RPC records (RFC 5531 §11 record marking), used by both the
// server and the client side.
//
// Receive: fragments are reassembled into one contiguous Buffer per record, bounded by
// max_record (a larger record closes the connection). Large fragments are read straight into
// the record buffer, so a WRITE payload is copied once, by the kernel.
// Send: thread-safe. A message is an xdr::Encoder whose first word is the record mark; memory
// segments go out with sendmsg, file segments with sendfile (no user-space copy).
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "rpc/event_loop.h"
#include "rpc/export_rules.h"
#include "rpc/record.h"
#include "xdr/xdr.h"

namespace loom::rpc {

class Connection : public std::enable_shared_from_this<Connection>, public EventLoop::Handler {
 public:
  struct Options {
    size_t max_record = (1u << 20) + (64u << 10);
    // Stop reading new records while this many are being processed (admission control).
    int max_inflight = 32;
    // Shared bound on the bytes of partial records (server side; may be null). A connection
    // whose record would take more than is left is closed.
    std::shared_ptr<ByteBudget> budget;
    // Replies sent on the loop thread while it handles the records of one read leave in one
    // sendmsg at the end (common/flush_batch.h). For servers of small replies (loom-mds); a
    // data server's large READ replies would each wait for the others' file reads.
    bool batch_replies = false;
  };
  struct Callbacks {
    // Called on the loop thread with each complete record.
    std::function<void(const std::shared_ptr<Connection>&, Record)> on_record;
    // Called once, on the loop thread, when the connection closes.
    std::function<void(Connection*)> on_close;
  };

  // Takes ownership of the non-blocking socket `fd`. Call Start() to begin reading.
  static std::shared_ptr<Connection> Create(EventLoop* loop, int fd, std::string peer,
                                            Options opts, Callbacks cb);
  ~Connection() override;

  void Start();
  // Thread-safe. `msg` must start with a word reserved by BeginRecord(); its record mark is set
  // here. A message sent on a closed connection is dropped.
  void Send(std::unique_ptr<xdr::Encoder> msg);
  // Thread-safe; idempotent.
  void Close();
  // A record handed to on_record has finished processing (its reply was sent or dropped).
  void RecordDone();
  // Send(msg), the reply to a record handed to on_record, and RecordDone for that record,
  // counted once the reply is queued and before any of it can reach the client: a call the
  // client sends after reading this reply never finds this one still in flight (Alone).
  void SendReply(std::unique_ptr<xdr::Encoder> msg);
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Where REPLY messages arriving on a server-side connection go (the connection carries our
  // calls to the client too: a back channel). Thread-safe.
  void SetReplySink(std::function<void(Record)> sink);
  std::function<void(Record)> reply_sink();
  const std::string& peer() const { return peer_; }
  EventLoop* loop() const { return loop_; }
  // Records handed to on_record and not yet done.
  int inflight() const { return inflight_.load(std::memory_order_acquire); }
  // Whether the call being handled is the only one the client has sent on this connection
  // that is not answered: nothing else in flight, held or read, and nothing unread in the
  // socket. A hint (the client may send more at once). Thread-safe.
  bool Alone() const;
  // NowMs() of the last bytes read or message sent (or of creation).
  int64_t last_active_ms() const { return last_active_ms_.load(std::memory_order_relaxed); }
  // The server's export rule for this peer (see RpcServer); set before Start().
  void set_export_rule(const ExportRule* r) { export_rule_ = r; }
  const ExportRule* export_rule() const { return export_rule_; }

  // Reserves the record-mark word at the start of a new message.
  static void BeginRecord(xdr::Encoder& e) { e.reserve_u32(); }

  void OnEvents(uint32_t events) override;

 private:
  Connection(EventLoop* loop, int fd, std::string peer, Options opts, Callbacks cb);
  void HandleRead();
  void Deliver(std::vector<Record>* recs);
  // Deliver, inside a FlushBatch when Options::batch_replies and several records came.
  void DeliverBatched(std::vector<Record>* recs);
  // Hands on held records while under max_inflight; true when none is left.
  bool DeliverHeld();
  // Counts `r` in flight and hands it to on_record.
  void Admit(Record r);
  // What RecordDone does once inflight_ went down from `before`.
  void AfterDone(int before);
  // Send's queueing; with `done`, the record's in-flight count drops under the same lock.
  void Queue(std::unique_ptr<xdr::Encoder> msg, bool done);
  void Flush();                 // REQUIRES: this thread is the flusher
  bool WriteSome(bool* again);  // writes from out_; false on a fatal error
  void UpdateInterest();
  void CloseOnLoop();

  EventLoop* loop_;
  const int fd_;
  const std::string peer_;
  const Options opts_;
  Callbacks cb_;
  std::atomic<bool> closed_{false};
  bool registered_ = false;
  std::atomic<int64_t> last_active_ms_;
  const ExportRule* export_rule_ = nullptr;

  // Receive state (loop thread only).
  RecordAssembler assembler_;
  std::atomic<int> inflight_{0};
  // Records read but not admitted yet: the rest of the batch being delivered, and held_.
  std::atomic<int> waiting_{0};
  bool reading_paused_ = false;
  std::deque<Record> held_;  // complete records waiting for an in-flight slot

  std::mutex sink_mu_;
  std::function<void(Record)> reply_sink_;  // guarded by sink_mu_

  // Send state.
  std::mutex send_mu_;
  std::vector<std::unique_ptr<xdr::Encoder>> pending_;  // guarded by send_mu_
  bool flushing_ = false;                               // guarded by send_mu_
  bool want_out_ = false;                               // guarded by send_mu_
  // Owned by the flusher.
  struct OutMsg {
    std::unique_ptr<xdr::Encoder> enc;
    std::vector<xdr::Segment> segs;
  };
  std::vector<OutMsg> out_;
  size_t out_msg_ = 0, out_seg_ = 0, out_off_ = 0;
  bool unmapped_ = false;  // a mapped file range faulted here: file ranges go with sendfile
};

}  // namespace loom::rpc
