// StreamImport: the pipeline shared by the audience imports
// (ImportRecipients, ImportContacts): one client stream of CSV chunks or
// JSON rows, all or nothing.
//
// The pipeline, per stream:
//   CQ thread:    hand each message to the stream's SerialQueue (only
//                 moves bytes, so no stream can hold other calls up)
//   serial queue: on the worker pool, one message at a time: hash it, parse
//                 it (CsvRowReader, or the JSON rows, both checked against
//                 ImportRowLimits) into batches of rows, then ask for the
//                 next message
//   worker pool:  Check: normalise and check addresses and the rest of each
//                 row (both cores, batches in parallel)
//   writer:       Stage: batches in row order, merged into bulk writes of
//                 StageBatches(), as rows no reader sees yet (duplicates
//                 come back, or are found by the target's Commit)
// At most kMaxBatchesInFlight batches are between the CQ thread and the
// writer; beyond that the stream stops reading (gRPC flow control holds the
// client back), so memory stays bounded whatever the file size. When the
// client half-closes, Commit makes the rows take effect; when it cancels or
// anything fails, RollBack deletes the staged rows and nothing changed.
//
// A request_id makes the import idempotent: its first result is stored with
// the hash of the whole stream (settings and content); a repeat with the
// same content gets that result without importing, other content gets
// IDEMPOTENCY_CONFLICT.
//
// A subclass supplies the target: its settings (Configure), where rows go
// (Begin, Stage, Commit, RollBack) and the per-row checks (Check).
// Req and Resp share the fields format, default_region, request_id,
// csv_chunk and rows (Req) and received, imported, duplicates, invalid and
// errors (Resp).
//
// Thread-safe: its callbacks may come from CQ threads, pool threads and the
// writer thread; a mutex guards the state.
#ifndef CAMPAIGND_SERVER_API_STREAM_IMPORT_H_
#define CAMPAIGND_SERVER_API_STREAM_IMPORT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "campaigns/v1/campaign.pb.h"
#include "server/api/call.h"
#include "server/api/worker_pool.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "server/domain/mutex.h"
#include "server/domain/repository.h"

namespace campaigns::api {

// A batch after Check: rows to stage and rows refused.
struct CheckedBatch {
  std::vector<StagedRecipient> rows;
  std::vector<int64_t> row_numbers;  // of `rows`, for duplicate errors
  std::vector<int64_t> line_numbers;
  std::vector<v1::ImportError> refused;  // invalid or suppressed
  int64_t staged = 0;                    // rows handed to the writer
  int batches = 1;                       // checked batches merged into this one
  int64_t invalid = 0;
  int64_t suppressed = 0;
  absl::Status status;  // not OK: the import cannot go on
};

v1::ImportError MakeImportError(int64_t row, std::string reason);

// Row errors listed in an import's response: the first ones by row.
inline constexpr size_t kMaxImportErrors = 100;

// Orders row errors by row.
bool ErrorRowLess(const v1::ImportError& a, const v1::ImportError& b);

// Sorts `errors` by row and keeps the first kMaxImportErrors.
void SortAndTrimErrors(
    google::protobuf::RepeatedPtrField<v1::ImportError>* errors);

// Returns memory the allocator holds but no longer uses to the system. An
// import frees its buffers (hundreds of MB for millions of rows) at once;
// without this the process keeps them mapped for good.
void ReleaseFreedMemory();

template <typename Req, typename Resp>
class StreamImport
    : public StreamConsumer<Req, Resp>,
      public std::enable_shared_from_this<StreamImport<Req, Resp>> {
 public:
  using Next = typename StreamConsumer<Req, Resp>::Next;

  // Rows validated and staged per batch.
  static constexpr size_t kBatchRows = 8192;
  // Batches read but not yet staged before the stream stops reading: at
  // least three staging writes' worth (one running, the next one queued
  // behind it, one filling), so the writer never waits for checked rows.
  static constexpr int kMaxBatchesInFlight = 12;
  // Row errors listed in the response.
  static constexpr size_t kMaxErrors = kMaxImportErrors;

  ~StreamImport() override { ReleaseFreedMemory(); }

  void OnMessage(const Req& message, Next next) final;
  void OnEnd(Reply<Resp> reply) final;
  void OnAbort() final;

 protected:
  StreamImport(const RpcContext& ctx, Repository* store, WorkerPool* pool);

  // --- The target ------------------------------------------------------
  // The method name idempotency records are kept under.
  virtual const char* MethodName() const = 0;
  // Checks the first message's target settings (the base checks format,
  // default_region and request_id) and hashes them into hasher_. The
  // request_id lookup and Begin follow.
  virtual absl::Status Configure(const Req& first) = 0;
  // Checks a later message's target settings. mu_ held.
  virtual absl::Status CheckLater(const Req& /*message*/) const {
    return absl::OkStatus();
  }
  // What an idempotency record of this import names (e.g. the campaign);
  // a repeat must name the same.
  virtual std::string Resource() const = 0;
  // Opens the import in storage; `done` gets the channel of its addresses.
  virtual void Begin(std::function<void(absl::StatusOr<Channel>)> done) = 0;
  // Runs on a pool thread: the rows that may be staged, and why the others
  // may not. Uses only what is fixed before the first batch (channel_,
  // default_region_, ctx_).
  virtual CheckedBatch Check(std::vector<ImportRow> rows) const = 0;
  // Checked batches per staging write (one bulk op of the writer, which
  // every other write may wait behind). An index filled in file order
  // wants few large commits (each rewrites the pages it touched); rows only
  // appended want small ones.
  virtual int StageBatches() const { return 4; }
  // Stages rows in row order (called with mu_ held, so calls keep order);
  // `done` gets the indexes of duplicates.
  virtual void Stage(std::vector<StagedRecipient> rows,
                     Done<std::vector<int32_t>> done) = 0;
  // Makes the staged rows take effect and remembers `record` under the
  // request id; `done` gets the final response (`response` completed, its
  // counts corrected if the target finds more duplicates). Called with mu_
  // held: must not block.
  virtual void Commit(Resp response, ImportRecord record, Reply<Resp> done) = 0;
  // Deletes the staged rows. Called at most once, after Begin succeeded and
  // unless Commit succeeded.
  virtual void RollBack() = 0;
  // Why a duplicate row was not staged.
  virtual absl::string_view DuplicateReason() const = 0;
  // Sets the target's own response fields. mu_ held.
  virtual void FillResponse(Resp* /*out*/) const {}

  WorkerPool* pool() const { return pool_; }
  // Whether the client cancelled (or the server is shutting down). Takes
  // mu_: not for code that holds it.
  bool Aborted() {
    MutexLock lock(&mu_);
    return aborted_;
  }

  const RpcContext ctx_;
  Repository* const store_;
  Sha256Hasher hasher_;
  // Fixed before the first batch is checked.
  Channel channel_ = Channel::kUnspecified;
  std::string default_region_;
  std::string request_id_;

  // Counters, guarded by mu_.
  int64_t received_ = 0;
  int64_t imported_ = 0;  // staged and not duplicates
  int64_t duplicates_ = 0;
  int64_t invalid_ = 0;
  int64_t suppressed_ = 0;

 private:
  enum class Phase {
    kFirst,     // waiting for the first message
    kStarting,  // Begin in flight
    kRunning,   // reading rows
    kReplay,    // a repeat of a finished request_id: only hashing
    kEnding,    // the client half-closed; waiting for batches to stage
    kDone,      // replied, committed or aborted
  };

  absl::Status Start(const Req& first);
  // Queues `message` on parse_queue_: TakeData, then its rows into the open
  // batch, then `next` (or withheld while too much is in flight). Messages
  // after the `first` must pass CheckLater.
  void Parse(std::shared_ptr<const Req> message, bool first, Next next);
  // Hashes `message` and, unless `replay`, parses its data into `rows`.
  // Runs on parse_queue_, without mu_.
  absl::Status TakeData(const Req& message, bool replay,
                        std::vector<ImportRow>* rows);
  // The client half-closed: on parse_queue_, after the last message.
  void End(Reply<Resp> reply);
  void SubmitBatch();  // mu_ held
  void OnChecked(int64_t seq, CheckedBatch batch);
  void StageReady();  // mu_ held: stages checked batches in order
  void OnStaged(const CheckedBatch& batch,
                absl::StatusOr<std::vector<int32_t>> duplicates);
  void AddErrors(std::vector<v1::ImportError> errors);  // mu_ held
  // Ends with `error`: replies it if OnEnd came, else fails the stream at
  // the next chance; rolls the import back. mu_ held.
  void Fail(absl::Status error);
  // Called with mu_ held whenever work completes: resumes reading, commits,
  // or rolls back as the phase requires. Returns callbacks to run unlocked.
  std::vector<std::function<void()>> Advance();
  void CommitNow();       // mu_ held, nothing in flight
  void RollBackOnce();    // mu_ held
  Resp Response() const;  // mu_ held

  WorkerPool* const pool_;
  // Hashing and parsing, in message order; csv_, json_rows_ and hasher_
  // (after Configure) are touched only by its tasks.
  SerialQueue parse_queue_;

  Mutex mu_;
  Phase phase_ = Phase::kFirst;
  int format_ = 0;  // Req's Format
  bool began_ = false;
  std::optional<ImportRecord> previous_;  // kReplay
  std::unique_ptr<CsvRowReader> csv_;
  int64_t json_rows_ = 0;
  std::vector<ImportRow> open_batch_;
  int64_t next_submit_ = 0;  // sequence number of the next batch submitted
  int64_t next_stage_ = 0;   // sequence number of the next batch to stage
  std::map<int64_t, CheckedBatch> checked_;     // checked, waiting for order
  std::shared_ptr<CheckedBatch> stage_buffer_;  // in order, not yet staged
  int in_flight_ = 0;                           // submitted, not yet staged
  Next pending_next_;                           // withheld: too much in flight
  Reply<Resp> reply_;                           // set by OnEnd
  absl::Status failure_;                        // first fatal error
  bool aborted_ = false;                        // OnAbort came
  bool rolled_back_ = false;
  bool committing_ = false;
  bool committed_ = false;
  std::vector<v1::ImportError> errors_;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_STREAM_IMPORT_H_
