// ImportRecipients: one client stream of CSV chunks or JSON rows into a
// campaign, all or nothing.
//
// The pipeline, per stream:
//   CQ thread:    parse the chunk (CsvRowReader) into batches of rows
//   worker pool:  normalise and check addresses, filter suppressions,
//                 encode variables (both cores, batches in parallel)
//   writer:       stage batches, in row order and merged into bulk writes
//                 of kStageRows, as invisible recipients
//                 (Store::StageRecipients; duplicates come back)
// At most kMaxBatchesInFlight batches are between the CQ thread and the
// writer; beyond that the stream stops reading (gRPC flow control holds the
// client back), so memory stays bounded whatever the file size. When the
// client half-closes, Store::CommitRecipientImport makes the rows visible in
// one small write; when it cancels or anything fails, the staged rows are
// deleted (Store::AbortRecipientImport) and the campaign is as before.
//
// A request_id makes the import idempotent: its first result is stored with
// the hash of the whole stream (settings and content); a repeat with the
// same content gets that result without importing, other content gets
// IDEMPOTENCY_CONFLICT.
//
// Thread-safe: its callbacks may come from CQ threads, pool threads and the
// writer thread; a mutex guards the state.
#ifndef CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_
#define CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "campaigns/v1/campaign.pb.h"
#include "server/api/call.h"
#include "server/api/worker_pool.h"
#include "server/domain/ids.h"
#include "server/domain/import_rows.h"
#include "storage/store.h"

namespace campaigns::api {

class RecipientImport final
    : public StreamConsumer<v1::ImportRecipientsRequest,
                            v1::ImportRecipientsResponse>,
      public std::enable_shared_from_this<RecipientImport> {
 public:
  // Rows validated and staged per batch.
  static constexpr size_t kBatchRows = 8192;
  // Batches read but not yet staged before the stream stops reading.
  static constexpr int kMaxBatchesInFlight = 8;
  // Rows per staging write (one bulk op of the writer).
  static constexpr size_t kStageRows = 32768;
  // Row errors listed in the response.
  static constexpr size_t kMaxErrors = 100;

  RecipientImport(const RpcContext& ctx, storage::Store* store,
                  WorkerPool* pool);

  void OnMessage(const v1::ImportRecipientsRequest& message,
                 Next next) override;
  void OnEnd(Reply<v1::ImportRecipientsResponse> reply) override;
  void OnAbort() override;

 private:
  // A batch after the pool checked it: rows to stage and rows refused.
  struct CheckedBatch {
    std::vector<storage::StagedRecipient> rows;
    std::vector<int64_t> row_numbers;  // of `rows`, for duplicate errors
    std::vector<int64_t> line_numbers;
    std::vector<v1::ImportError> refused;  // invalid or suppressed
    int64_t staged = 0;                    // rows handed to the writer
    int batches = 1;  // checked batches merged into this one
    int64_t invalid = 0;
    int64_t suppressed = 0;
    absl::Status status;  // not OK: the import cannot go on
  };

  enum class Phase {
    kFirst,     // waiting for the first message
    kStarting,  // Begin (or the idempotency lookup) in flight
    kRunning,   // reading rows
    kReplay,    // a repeat of a finished request_id: only hashing
    kEnding,    // the client half-closed; waiting for batches to stage
    kDone,      // replied, committed or aborted
  };

  absl::Status Start(const v1::ImportRecipientsRequest& first);
  // Hashes and parses the data of `message` into the open batch, submitting
  // full batches. Called with mu_ held.
  absl::Status TakeData(const v1::ImportRecipientsRequest& message);
  void SubmitBatch();                                     // mu_ held
  CheckedBatch Check(std::vector<ImportRow> rows) const;  // pool thread
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
  void Commit();                                  // mu_ held, nothing in flight
  void RollBackOnce();                            // mu_ held
  v1::ImportRecipientsResponse Response() const;  // mu_ held

  const RpcContext ctx_;
  storage::Store* const store_;
  WorkerPool* const pool_;

  std::mutex mu_;
  Phase phase_ = Phase::kFirst;
  v1::ImportRecipientsRequest::Format format_ =
      v1::ImportRecipientsRequest::format_unspecified;
  std::string campaign_id_;
  std::string default_region_;
  std::string request_id_;
  Channel channel_ = Channel::kUnspecified;
  std::optional<storage::ImportLease> lease_;
  std::optional<storage::ImportRecord> previous_;  // kReplay
  Sha256Hasher hasher_;
  std::unique_ptr<CsvRowReader> csv_;
  int64_t json_rows_ = 0;
  std::vector<ImportRow> open_batch_;
  int64_t next_submit_ = 0;  // sequence number of the next batch submitted
  int64_t next_stage_ = 0;   // sequence number of the next batch to stage
  std::map<int64_t, CheckedBatch> checked_;     // checked, waiting for order
  std::shared_ptr<CheckedBatch> stage_buffer_;  // in order, not yet staged
  int in_flight_ = 0;                           // submitted, not yet staged
  Next pending_next_;                           // withheld: too much in flight
  Reply<v1::ImportRecipientsResponse> reply_;   // set by OnEnd
  absl::Status failure_;                        // first fatal error
  bool aborted_ = false;                        // OnAbort came
  bool rolled_back_ = false;
  bool committing_ = false;
  bool committed_ = false;

  int64_t received_ = 0;
  int64_t imported_ = 0;
  int64_t duplicates_ = 0;
  int64_t invalid_ = 0;
  int64_t suppressed_ = 0;
  std::vector<v1::ImportError> errors_;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_
