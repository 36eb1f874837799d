// StreamImport: the client-stream pipeline shared by the audience imports.
#include "server/api/stream_import.h"

#include <malloc.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "campaigns/v1/contact.pb.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "server/log/log.h"

namespace campaigns::api {
namespace {}  // namespace

void ReleaseFreedMemory() { malloc_trim(0); }

v1::ImportError MakeImportError(int64_t row, std::string reason) {
  v1::ImportError e;
  e.set_row(row);
  e.set_reason(std::move(reason));
  return e;
}

bool ErrorRowLess(const v1::ImportError& a, const v1::ImportError& b) {
  return a.row() < b.row();
}

void SortAndTrimErrors(
    google::protobuf::RepeatedPtrField<v1::ImportError>* errors) {
  std::stable_sort(errors->begin(), errors->end(), ErrorRowLess);
  while (static_cast<size_t>(errors->size()) > kMaxImportErrors) {
    errors->RemoveLast();
  }
}

template <typename Req, typename Resp>
StreamImport<Req, Resp>::StreamImport(const RpcContext& ctx, Repository* store,
                                      WorkerPool* pool)
    : ctx_(ctx), store_(store), pool_(pool), parse_queue_(pool) {}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::OnMessage(const Req& message, Next next) {
  absl::Status result;
  {
    MutexLock lock(&mu_);
    if (!failure_.ok()) {
      result = failure_;
    } else if (phase_ == Phase::kFirst) {
      result = Start(message);
      if (result.ok() && phase_ == Phase::kStarting) {
        // Begin's callback queues the data of this message.
        auto self = this->shared_from_this();
        auto first = std::make_shared<const Req>(message);
        Begin([self, first, next](absl::StatusOr<Channel> channel) {
          {
            MutexLock lock(&self->mu_);
            if (!channel.ok()) {
              self->phase_ = Phase::kDone;
            } else {
              self->began_ = true;
              self->channel_ = *channel;
              self->csv_ = std::make_unique<CsvRowReader>(self->channel_);
              self->phase_ = Phase::kRunning;
            }
          }
          if (!channel.ok()) return next(channel.status());
          self->Parse(first, /*first=*/true, next);
        });
        return;
      }
      if (result.ok()) {  // kReplay: only hashing
        Parse(std::make_shared<const Req>(message), /*first=*/true, next);
        return;
      }
    } else if (phase_ == Phase::kRunning || phase_ == Phase::kReplay) {
      Parse(std::make_shared<const Req>(message), /*first=*/false, next);
      return;
    } else {
      result = absl::InternalError("import stream out of order");
    }
  }
  next(result);
}

template <typename Req, typename Resp>
absl::Status StreamImport<Req, Resp>::Start(const Req& first) {
  RETURN_IF_ERROR(Configure(first));
  if (first.format() != v1::ImportRecipientsRequest::csv &&
      first.format() != v1::ImportRecipientsRequest::json_rows) {
    return errors::InvalidField("format", "must be csv or json_rows");
  }
  default_region_ =
      absl::AsciiStrToUpper(absl::StripAsciiWhitespace(first.default_region()));
  if (!default_region_.empty() && !IsKnownRegion(default_region_)) {
    return errors::InvalidField(
        "default_region",
        absl::StrCat("\"", first.default_region(),
                     "\" is not a known ISO 3166 region code (e.g. US, GB)"));
  }
  RETURN_IF_ERROR(CheckIdLength("request_id", first.request_id()));
  format_ = first.format();
  request_id_ = first.request_id();
  hasher_.UpdateField(absl::StrCat(static_cast<int>(format_)));
  hasher_.UpdateField(default_region_);
  if (!request_id_.empty()) {
    absl::StatusOr<std::optional<ImportRecord>> previous =
        store_->FindImportRecord(ctx_.principal.account_id, MethodName(),
                                 request_id_);
    if (!previous.ok()) return previous.status();
    if (previous->has_value()) {
      // A repeat: read the stream only to compare its hash.
      previous_ = **previous;
      phase_ = Phase::kReplay;
      return absl::OkStatus();
    }
  }
  phase_ = Phase::kStarting;
  return absl::OkStatus();
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::Parse(std::shared_ptr<const Req> message,
                                    bool first, Next next) {
  parse_queue_.Submit([self = this->shared_from_this(),
                       message = std::move(message), first,
                       next = std::move(next)]() mutable {
    bool replay = false;
    absl::Status status;
    {
      MutexLock lock(&self->mu_);
      if (self->aborted_) return;  // the call is over: nothing to resume
      replay = self->phase_ == Phase::kReplay;
      if (!self->failure_.ok()) {
        status = self->failure_;
      } else if (!first && !replay) {
        status = self->CheckLater(*message);
      }
    }
    std::vector<ImportRow> rows;
    if (status.ok()) status = self->TakeData(*message, replay, &rows);
    message.reset();
    std::vector<std::function<void()>> later;
    bool withhold = false;
    {
      MutexLock lock(&self->mu_);
      if (self->aborted_) return;
      if (!self->failure_.ok()) {
        status = self->failure_;
      } else if (!status.ok()) {
        self->Fail(status);
        later = self->Advance();
      } else {
        for (ImportRow& row : rows) {
          self->open_batch_.push_back(std::move(row));
        }
        while (self->open_batch_.size() >= kBatchRows) self->SubmitBatch();
        if (self->in_flight_ >= kMaxBatchesInFlight) {
          self->pending_next_ = std::move(next);
          withhold = true;
        }
      }
    }
    for (auto& fn : later) fn();
    if (!withhold) next(status);
  });
}

template <typename Req, typename Resp>
absl::Status StreamImport<Req, Resp>::TakeData(const Req& message, bool replay,
                                               std::vector<ImportRow>* rows) {
  if (format_ == v1::ImportRecipientsRequest::csv) {
    if (message.rows_size() > 0) {
      return errors::InvalidField("rows", "the format is csv: send csv_chunk");
    }
    hasher_.Update(message.csv_chunk());
    if (replay || message.csv_chunk().empty()) return absl::OkStatus();
    return csv_->Feed(message.csv_chunk(), rows);
  }
  if (!message.csv_chunk().empty()) {
    return errors::InvalidField("csv_chunk",
                                "the format is json_rows: send rows");
  }
  for (const v1::RecipientRow& in : message.rows()) {
    hasher_.UpdateField(in.address());
    hasher_.UpdateField(in.contact_id());
    // Map order is unspecified on the wire; hash it sorted.
    std::map<std::string, std::string> vars(in.variables().begin(),
                                            in.variables().end());
    hasher_.UpdateField(absl::StrCat(vars.size()));
    for (const auto& [k, v] : vars) {
      hasher_.UpdateField(k);
      hasher_.UpdateField(v);
    }
    if (replay) continue;
    ImportRow row = ReadJsonRow(++json_rows_, in.address(), in.contact_id(),
                                std::move(vars));
    rows->push_back(std::move(row));
  }
  return absl::OkStatus();
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::SubmitBatch() {
  if (open_batch_.empty()) return;
  std::vector<ImportRow> rows;
  if (open_batch_.size() <= kBatchRows) {
    rows.swap(open_batch_);
  } else {
    rows.assign(std::make_move_iterator(open_batch_.begin()),
                std::make_move_iterator(open_batch_.begin() + kBatchRows));
    open_batch_.erase(open_batch_.begin(), open_batch_.begin() + kBatchRows);
  }
  const int64_t seq = next_submit_++;
  ++in_flight_;
  received_ += static_cast<int64_t>(rows.size());
  pool_->Submit(
      [self = this->shared_from_this(), seq, rows = std::move(rows)]() {
        self->OnChecked(seq, self->Check(std::move(rows)));
      });
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::OnChecked(int64_t seq, CheckedBatch batch) {
  std::vector<std::function<void()>> later;
  {
    MutexLock lock(&mu_);
    if (aborted_ || !failure_.ok()) {
      --in_flight_;
    } else if (!batch.status.ok()) {
      --in_flight_;
      Fail(batch.status);
    } else {
      checked_.emplace(seq, std::move(batch));
      StageReady();
    }
    later = Advance();
  }
  for (auto& fn : later) fn();
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::StageReady() {
  for (auto it = checked_.find(next_stage_); it != checked_.end();
       it = checked_.find(next_stage_)) {
    CheckedBatch batch = std::move(it->second);
    checked_.erase(it);
    ++next_stage_;
    invalid_ += batch.invalid;
    suppressed_ += batch.suppressed;
    if (!stage_buffer_) {
      stage_buffer_ = std::make_shared<CheckedBatch>();
      stage_buffer_->batches = 0;
    }
    CheckedBatch& buffer = *stage_buffer_;
    buffer.batches += batch.batches;
    for (auto& r : batch.rows) buffer.rows.push_back(std::move(r));
    buffer.row_numbers.insert(buffer.row_numbers.end(),
                              batch.row_numbers.begin(),
                              batch.row_numbers.end());
    buffer.line_numbers.insert(buffer.line_numbers.end(),
                               batch.line_numbers.begin(),
                               batch.line_numbers.end());
    for (auto& e : batch.refused) buffer.refused.push_back(std::move(e));
  }
  // Stage in writes of StageBatches() batches (each a bulk op of the
  // writer). The last rows go when the stream ended.
  if (!stage_buffer_ ||
      (stage_buffer_->batches < StageBatches() &&
       !(phase_ == Phase::kEnding && next_stage_ == next_submit_))) {
    return;
  }
  std::shared_ptr<CheckedBatch> batch = std::move(stage_buffer_);
  stage_buffer_.reset();
  if (batch->rows.empty()) {
    AddErrors(std::move(batch->refused));
    in_flight_ -= batch->batches;
    return;
  }
  std::vector<StagedRecipient> rows = std::move(batch->rows);
  batch->rows.clear();
  batch->staged = static_cast<int64_t>(rows.size());
  // Under mu_, so batches reach the writer in row order: the first of two
  // equal addresses is the one kept.
  Stage(std::move(rows), [self = this->shared_from_this(), batch](
                             absl::StatusOr<std::vector<int32_t>> duplicates) {
    self->OnStaged(*batch, std::move(duplicates));
  });
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::OnStaged(
    const CheckedBatch& batch,
    absl::StatusOr<std::vector<int32_t>> duplicates) {
  std::vector<std::function<void()>> later;
  {
    MutexLock lock(&mu_);
    in_flight_ -= batch.batches;
    if (!duplicates.ok()) {
      Fail(duplicates.status());
    } else {
      const int64_t dups = static_cast<int64_t>(duplicates->size());
      imported_ += batch.staged - dups;
      duplicates_ += dups;
      std::vector<v1::ImportError> errors = batch.refused;
      for (int32_t i : *duplicates) {
        errors.push_back(MakeImportError(
            batch.row_numbers[i],
            RowErrorReason(batch.line_numbers[i], DuplicateReason())));
      }
      AddErrors(std::move(errors));
    }
    later = Advance();
  }
  for (auto& fn : later) fn();
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::AddErrors(std::vector<v1::ImportError> errors) {
  if (errors.empty()) return;
  if (errors_.size() >= kMaxErrors &&
      errors.front().row() > errors_.back().row() &&
      std::is_sorted(errors.begin(), errors.end(), ErrorRowLess)) {
    return;  // all later than the ones kept
  }
  for (v1::ImportError& e : errors) errors_.push_back(std::move(e));
  std::sort(errors_.begin(), errors_.end(), ErrorRowLess);
  if (errors_.size() > kMaxErrors) errors_.resize(kMaxErrors);
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::OnEnd(Reply<Resp> reply) {
  std::vector<std::function<void()>> later;
  absl::StatusOr<Resp> immediate = absl::InternalError("unset");
  bool answer_now = false;
  {
    MutexLock lock(&mu_);
    if (!failure_.ok()) {
      reply_ = std::move(reply);
      later = Advance();
    } else if (phase_ == Phase::kFirst) {
      phase_ = Phase::kDone;
      answer_now = true;
      // The error a first message without settings gets.
      absl::Status empty = Configure(Req());
      immediate = !empty.ok() ? empty
                              : errors::InvalidField(
                                    "format",
                                    "the stream was empty: its first message "
                                    "must carry the import's settings");
    } else if (phase_ == Phase::kReplay || phase_ == Phase::kRunning) {
      // After the last message's parse, which may still be finishing.
      parse_queue_.Submit(
          [self = this->shared_from_this(), reply = std::move(reply)]() {
            self->End(std::move(reply));
          });
    } else {
      answer_now = true;
      immediate = absl::InternalError("import stream ended out of order");
    }
  }
  for (auto& fn : later) fn();
  if (answer_now) reply(std::move(immediate));
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::End(Reply<Resp> reply) {
  std::vector<std::function<void()>> later;
  absl::StatusOr<Resp> immediate = absl::InternalError("unset");
  bool answer_now = false;
  std::vector<ImportRow> rows;
  absl::Status finished = absl::OkStatus();
  bool replay = false;
  {
    MutexLock lock(&mu_);
    if (aborted_) return;
    replay = phase_ == Phase::kReplay;
  }
  if (!replay && format_ == v1::ImportRecipientsRequest::csv) {
    finished = csv_->Finish(&rows);
  }
  {
    MutexLock lock(&mu_);
    if (aborted_) return;
    if (!failure_.ok()) {
      reply_ = std::move(reply);
    } else if (replay) {
      phase_ = Phase::kDone;
      answer_now = true;
      Resp first;
      if (hasher_.HexDigest() == previous_->body_hash &&
          previous_->campaign_id == Resource() &&
          first.ParseFromString(previous_->response)) {
        immediate = std::move(first);
      } else {
        immediate = errors::IdempotencyConflict(request_id_);
      }
    } else {
      reply_ = std::move(reply);
      if (!finished.ok()) {
        Fail(finished);
      } else {
        for (ImportRow& row : rows) open_batch_.push_back(std::move(row));
        while (!open_batch_.empty()) SubmitBatch();
        phase_ = Phase::kEnding;
        StageReady();  // rows already checked but still buffered
      }
    }
    if (!answer_now) later = Advance();
  }
  for (auto& fn : later) fn();
  if (answer_now) reply(std::move(immediate));
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::OnAbort() {
  std::vector<std::function<void()>> later;
  {
    MutexLock lock(&mu_);
    aborted_ = true;
    pending_next_ = nullptr;  // the call is over: nothing to resume
    reply_ = nullptr;
    later = Advance();
  }
  for (auto& fn : later) fn();
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::Fail(absl::Status error) {
  if (failure_.ok()) failure_ = std::move(error);
}

template <typename Req, typename Resp>
std::vector<std::function<void()>> StreamImport<Req, Resp>::Advance() {
  std::vector<std::function<void()>> later;
  if (aborted_ || !failure_.ok()) {
    if (stage_buffer_) {  // checked rows that will never be staged
      in_flight_ -= stage_buffer_->batches;
      stage_buffer_.reset();
    }
    if (in_flight_ == 0 && !committing_) RollBackOnce();
    if (!failure_.ok()) {
      if (pending_next_) {
        later.push_back(
            [next = std::move(pending_next_), s = failure_] { next(s); });
        pending_next_ = nullptr;
      }
      if (reply_ && phase_ != Phase::kDone) {
        phase_ = Phase::kDone;
        later.push_back(
            [reply = std::move(reply_), s = failure_] { reply(s); });
        reply_ = nullptr;
      }
    }
    return later;
  }
  if (phase_ == Phase::kRunning && pending_next_ &&
      in_flight_ < kMaxBatchesInFlight) {
    later.push_back(
        [next = std::move(pending_next_)] { next(absl::OkStatus()); });
    pending_next_ = nullptr;
  }
  if (phase_ == Phase::kEnding && in_flight_ == 0 && !committing_) CommitNow();
  return later;
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::CommitNow() {
  committing_ = true;
  ImportRecord record;
  record.body_hash = hasher_.HexDigest();
  record.campaign_id = Resource();
  Commit(
      Response(), std::move(record),
      [self = this->shared_from_this()](absl::StatusOr<Resp> response) {
        std::vector<std::function<void()>> later;
        Reply<Resp> reply;
        {
          MutexLock lock(&self->mu_);
          self->committing_ = false;
          if (response.ok()) {
            // Recipients only: a contact import's rows (created or
            // updated contacts) are another kind of row.
            if (absl::string_view(self->MethodName()) == "ImportRecipients") {
              Metrics* m = self->ctx_.metrics;
              m->ImportRows(ImportRowResult::kImported, response->imported());
              m->ImportRows(ImportRowResult::kDuplicate,
                            response->duplicates());
              m->ImportRows(ImportRowResult::kInvalid, self->invalid_);
              m->ImportRows(ImportRowResult::kSuppressed, self->suppressed_);
            }
            self->committed_ = true;
            self->phase_ = Phase::kDone;
            reply = std::move(self->reply_);
            self->reply_ = nullptr;
          } else {
            self->Fail(response.status());
            later = self->Advance();
          }
        }
        for (auto& fn : later) fn();
        if (reply) reply(std::move(response));
      });
}

template <typename Req, typename Resp>
void StreamImport<Req, Resp>::RollBackOnce() {
  if (!began_ || rolled_back_ || committed_) return;
  rolled_back_ = true;
  // The client's own mistakes (a bad row, a cancel) are its answer; a
  // failure of ours is what an operator needs to see.
  const bool ours = !failure_.ok() &&
                    (failure_.code() == absl::StatusCode::kInternal ||
                     failure_.code() == absl::StatusCode::kUnavailable ||
                     failure_.code() == absl::StatusCode::kResourceExhausted ||
                     failure_.code() == absl::StatusCode::kDataLoss);
  logging::Log(ours ? logging::Level::kError : logging::Level::kInfo,
               "import rolled back",
               {{"rpc", MethodName()},
                {"resource", Resource()},
                {"account_id", ctx_.principal.account_id},
                {"rows_received", received_},
                {"error", failure_.ok() ? std::string("the client cancelled")
                                        : failure_.ToString()}});
  RollBack();
}

template <typename Req, typename Resp>
Resp StreamImport<Req, Resp>::Response() const {
  Resp out;
  out.set_received(received_);
  out.set_imported(imported_);
  out.set_duplicates(duplicates_);
  out.set_invalid(invalid_);
  for (const v1::ImportError& e : errors_) *out.add_errors() = e;
  FillResponse(&out);
  return out;
}

template class StreamImport<v1::ImportRecipientsRequest,
                            v1::ImportRecipientsResponse>;
template class StreamImport<v1::ImportContactsRequest,
                            v1::ImportContactsResponse>;

}  // namespace campaigns::api
