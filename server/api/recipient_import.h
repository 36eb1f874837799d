// RecipientImport: ImportRecipients, the StreamImport of recipients into
// one campaign.
//
// Rows are checked for their address (normalised for the campaign's
// channel), their contact (a row naming a contact takes its address when it
// has none) and the account's suppression list, then staged as invisible
// recipients at or above the campaign's import floor
// (Store::StageRecipients) in file order. Commit first settles them on the
// pool (Store::SettleRecipientImport: duplicates found in address order and
// deleted, listed by row in the response), then makes the rest part of the
// campaign in one small write (Store::CommitRecipientImport); rollback
// deletes them in chunks (Store::AbortRecipientImport).
//
// Thread-safe, as StreamImport.
#ifndef CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_
#define CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "campaigns/v1/campaign.pb.h"
#include "server/api/stream_import.h"

namespace campaigns::api {

class RecipientImport final
    : public StreamImport<v1::ImportRecipientsRequest,
                          v1::ImportRecipientsResponse> {
 public:
  RecipientImport(const RpcContext& ctx, Repository* store, WorkerPool* pool)
      : StreamImport(ctx, store, pool) {}
  // The safety net of the campaign's import slot: an import begun and
  // neither committed nor rolled back when its last reference goes is
  // rolled back here, so no path can leave the campaign refusing imports.
  ~RecipientImport() override;

 private:
  using Req = v1::ImportRecipientsRequest;
  using Resp = v1::ImportRecipientsResponse;

  const char* MethodName() const override { return "ImportRecipients"; }
  absl::Status Configure(const Req& first) override;
  absl::Status CheckLater(const Req& message) const override;
  std::string Resource() const override { return campaign_id_; }
  void Begin(std::function<void(absl::StatusOr<Channel>)> done) override;
  CheckedBatch Check(std::vector<ImportRow> rows) const override;
  // Staging only appends: one batch per write keeps other writes' wait
  // short.
  int StageBatches() const override { return 1; }
  void Stage(std::vector<StagedRecipient> rows,
             Done<std::vector<int32_t>> done) override;
  void Commit(Resp response, ImportRecord record, Reply<Resp> done) override;
  // Commit, once the duplicates are out of `response`'s counts.
  void CommitSettled(Resp response, ImportRecord record, Reply<Resp> done);
  void RollBack() override;
  absl::string_view DuplicateReason() const override;
  void FillResponse(Resp* out) const override;

  std::string campaign_id_;  // fixed by Configure
  // Set by Begin's callback before any batch is staged.
  std::optional<ImportLease> lease_;
  // Committed or rolled back. Written by Commit's callback and RollBack
  // (which StreamImport never runs concurrently), read by the destructor.
  bool settled_ = false;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_RECIPIENT_IMPORT_H_
