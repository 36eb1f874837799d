// Small helpers shared by the handler files. Private to server/api.
#ifndef CAMPAIGND_SERVER_API_HANDLER_UTIL_H_
#define CAMPAIGND_SERVER_API_HANDLER_UTIL_H_

#include <google/protobuf/empty.pb.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/api/call.h"
#include "server/api/convert.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/repository.h"
#include "server/domain/rules.h"

namespace campaigns::api {

// Replies with the conversion of `value`, or its error.
template <typename Proto, typename T>
void ReplyWith(const absl::StatusOr<T>& value, const Reply<Proto>& reply) {
  if (!value.ok()) return reply(value.status());
  Proto out;
  ToProto(*value, &out);
  reply(std::move(out));
}

// A callback for the Store that converts its value and replies.
template <typename Proto, typename T>
std::function<void(absl::StatusOr<T>)> Convert(Reply<Proto> reply) {
  return [reply = std::move(reply)](absl::StatusOr<T> value) {
    ReplyWith<Proto, T>(value, reply);
  };
}

// A status callback for the Store that replies Empty.
inline std::function<void(absl::Status)> ReplyEmpty(
    Reply<google::protobuf::Empty> reply) {
  return [reply = std::move(reply)](absl::Status status) {
    if (!status.ok()) return reply(status);
    reply(google::protobuf::Empty());
  };
}

// The identity of a list query, which its page tokens are bound to: a digest
// of the caller's account, the request's type and every field of the
// request but page, limit and page_token (its filters and parent ids, such
// as campaign_id).
inline std::string QueryDigest(const RpcContext& ctx,
                               const google::protobuf::Message& req) {
  std::unique_ptr<google::protobuf::Message> query(req.New());
  query->CopyFrom(req);
  const google::protobuf::Reflection* reflection = query->GetReflection();
  for (const char* paging : {"page", "limit", "page_token"}) {
    const google::protobuf::FieldDescriptor* field =
        query->GetDescriptor()->FindFieldByName(paging);
    if (field != nullptr) reflection->ClearField(query.get(), field);
  }
  query->DiscardUnknownFields();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    out.SetSerializationDeterministic(true);
    query->SerializeToCodedStream(&out);
  }
  Sha256Hasher hasher;
  hasher.UpdateField(ctx.principal.account_id);
  hasher.UpdateField(query->GetDescriptor()->full_name());
  hasher.UpdateField(bytes);
  return hasher.HexDigest();
}

// The page a list request asks for (page, limit, page_token), its token
// checked against the request's QueryDigest (kept in `query`).
template <typename Req>
absl::StatusOr<PageRequest> PageOf(const RpcContext& ctx, const Req& req,
                                   std::string* query) {
  *query = QueryDigest(ctx, req);
  return MakePageRequest(req.page(), req.limit(), req.page_token(), *query);
}

// Fills a list response (items, total, page, limit, has_more,
// next_page_token) from a page of domain values of the query `query` (see
// PageOf).
template <typename Resp, typename T, typename AddFn>
void ReplyPage(const absl::StatusOr<Page<T>>& page, const std::string& query,
               const Reply<Resp>& reply, AddFn add) {
  if (!page.ok()) return reply(page.status());
  Resp out;
  for (const T& item : page->items) ToProto(item, add(out));
  out.set_total(page->total);
  out.set_page(page->page);
  out.set_limit(page->limit);
  out.set_has_more(page->has_more);
  if (page->has_more) {
    PageRequest current;
    current.page = page->page;
    current.limit = page->limit;
    out.set_next_page_token(EncodePageToken(current, query, page->next_key));
  }
  reply(std::move(out));
}

// The idempotency key of a create request: its request_id (checked for
// length) and the hash of the rest of its body.
template <typename Req>
absl::StatusOr<IdempotencyKey> IdempotencyOf(std::string method,
                                             const Req& req) {
  RETURN_IF_ERROR(CheckIdLength("request_id", req.request_id()));
  return IdempotencyKey{std::move(method), req.request_id(), RequestHash(req)};
}

inline absl::Status RequireId(const std::string& id, const char* field = "id") {
  if (id.empty()) return errors::InvalidField(field, "is required");
  return CheckIdLength(field, id);
}

// The set of paths of `mask`, each checked against `allowed`.
inline absl::StatusOr<std::set<std::string>> MaskPaths(
    const google::protobuf::FieldMask& mask,
    const std::set<std::string>& allowed) {
  std::set<std::string> paths;
  for (const std::string& p : mask.paths()) {
    if (allowed.count(p) == 0) {
      return errors::InvalidField(
          "update_mask",
          absl::StrCat("cannot update ", errors::Quote(p),
                       "; updatable: ", absl::StrJoin(allowed, ", ")));
    }
    paths.insert(p);
  }
  return paths;
}

}  // namespace campaigns::api

#endif  // CAMPAIGND_SERVER_API_HANDLER_UTIL_H_
