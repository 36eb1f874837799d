// ContactImport: ImportContacts, the StreamImport of contacts of one
// channel into the caller's account.
//
// Rows are checked for their address (normalised for the channel) and their
// attributes (every column but the address; empty cells are left out, so
// they never blank an attribute an existing contact has), then staged out
// of every reader's sight (Store::StageContacts). Commit applies them
// (Store::CommitContactImport): a new address becomes a contact, a known one
// gets the row's attributes merged in; both get the stream's tags and list.
// The response counts new contacts as `imported` and matched ones as
// `updated`; a row whose address came earlier in the stream is a duplicate.
//
// Thread-safe, as StreamImport.
#ifndef CAMPAIGND_SERVER_API_CONTACT_IMPORT_H_
#define CAMPAIGND_SERVER_API_CONTACT_IMPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "campaigns/v1/contact.pb.h"
#include "server/api/stream_import.h"

namespace campaigns::api {

// ImportResponseFinisher of ImportContacts: the recorded response with
// `imported` and `updated` set.
std::string FinishContactImportResponse(const std::string& recorded,
                                        const ContactImportResult& result);

class ContactImport final : public StreamImport<v1::ImportContactsRequest,
                                                v1::ImportContactsResponse> {
 public:
  ContactImport(const RpcContext& ctx, Repository* store, WorkerPool* pool)
      : StreamImport(ctx, store, pool) {}
  // As RecipientImport's: an import begun and neither committed nor rolled
  // back when its last reference goes is rolled back here.
  ~ContactImport() override;

 private:
  using Req = v1::ImportContactsRequest;
  using Resp = v1::ImportContactsResponse;

  const char* MethodName() const override { return "ImportContacts"; }
  absl::Status Configure(const Req& first) override;
  absl::Status CheckLater(const Req& message) const override;
  std::string Resource() const override { return ""; }
  void Begin(std::function<void(absl::StatusOr<Channel>)> done) override;
  CheckedBatch Check(std::vector<ImportRow> rows) const override;
  void Stage(std::vector<StagedRecipient> rows,
             Done<std::vector<int32_t>> done) override;
  void Commit(Resp response, ImportRecord record, Reply<Resp> done) override;
  void RollBack() override;
  absl::string_view DuplicateReason() const override;

  ContactImportLease lease_;  // id set by Begin's callback
  int64_t next_row_ = 1;      // number of the next staged row
  // Committed or rolled back. Written by Commit's callback and RollBack
  // (which StreamImport never runs concurrently), read by the destructor.
  bool settled_ = false;
};

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_CONTACT_IMPORT_H_
