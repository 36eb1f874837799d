// ContactService handlers: contacts (address, attributes, tags) and contact
// lists. ImportContacts is a ContactImport stream (contact_import.h).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "server/api/api.h"
#include "server/api/contact_fields.h"
#include "server/api/contact_import.h"
#include "server/api/handler_util.h"
#include "server/domain/address.h"
#include "server/domain/ids.h"

namespace campaigns::api {
namespace {

constexpr size_t kMaxListDescriptionLength = 1000;

// A single tag filter, checked like TagsFromProto's entries ("" = none).
absl::Status CheckTagFilter(const std::string& tag) {
  if (tag.size() > kMaxTagLength) {
    return errors::InvalidField(
        "tag", absl::StrCat("is longer than ", kMaxTagLength, " characters"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> AttributesFromProto(
    const google::protobuf::Map<std::string, std::string>& attributes) {
  if (attributes.size() > kMaxListEntries) {
    return errors::InvalidField("attributes", "has too many entries");
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : attributes) {
    if (std::string why = AttributeProblem(key, value); !why.empty()) {
      return errors::InvalidField("attributes", why);
    }
    out.emplace(key, value);
  }
  return out;
}

absl::Status CheckRegion(const std::string& region) {
  if (!region.empty() && !IsKnownRegion(region)) {
    return errors::InvalidField(
        "default_region",
        absl::StrCat("unknown region ", errors::Quote(region),
                     "; use an ISO 3166 code such as US or GB"));
  }
  return absl::OkStatus();
}

// The contact ids of a membership request: at least one, each a valid id.
absl::StatusOr<std::vector<std::string>> MemberIds(
    const v1::ContactListMembershipRequest& req) {
  if (req.contact_ids().empty()) {
    return errors::InvalidField("contact_ids", "is required");
  }
  if (static_cast<size_t>(req.contact_ids_size()) > kMaxListEntries) {
    return errors::InvalidField("contact_ids", "has too many entries");
  }
  std::vector<std::string> ids;
  for (const std::string& id : req.contact_ids()) {
    RETURN_IF_ERROR(RequireId(id, "contact_ids"));
    ids.push_back(id);
  }
  return ids;
}

// A Store callback answering a membership request.
std::function<void(absl::StatusOr<ListMembershipChange>)> ReplyMembership(
    Reply<v1::ContactListMembershipResponse> reply) {
  return
      [reply = std::move(reply)](absl::StatusOr<ListMembershipChange> change) {
        if (!change.ok()) return reply(change.status());
        v1::ContactListMembershipResponse out;
        out.set_changed(change->changed);
        ToProto(change->list, out.mutable_list());
        reply(std::move(out));
      };
}

}  // namespace

void Api::RegisterContacts(Registrar& r) {
  RawService* c = &contact_service_;
  r.Unary(c, "CreateContact", Bind(this, &Api::CreateContact));
  r.ClientStream<v1::ImportContactsRequest, v1::ImportContactsResponse>(
      c, "ImportContacts", [this](const RpcContext& ctx) {
        return std::make_shared<ContactImport>(ctx, store_, &pool_);
      });
  r.Unary(c, "GetContact", Bind(this, &Api::GetContact));
  r.Unary(c, "ListContacts", Bind(this, &Api::ListContacts));
  r.Unary(c, "UpdateContact", Bind(this, &Api::UpdateContact));
  r.Unary(c, "DeleteContact", Bind(this, &Api::DeleteContact));
  r.Unary(c, "CreateContactList", Bind(this, &Api::CreateContactList));
  r.Unary(c, "GetContactList", Bind(this, &Api::GetContactList));
  r.Unary(c, "ListContactLists", Bind(this, &Api::ListContactLists));
  r.Unary(c, "DeleteContactList", Bind(this, &Api::DeleteContactList));
  r.Unary(c, "AddContactsToList", Bind(this, &Api::AddContactsToList));
  r.Unary(c, "RemoveContactsFromList",
          Bind(this, &Api::RemoveContactsFromList));
}

// --- Contacts ----------------------------------------------------------------

void Api::CreateContact(const RpcContext& ctx,
                        const v1::CreateContactRequest& req,
                        Reply<v1::Contact> reply) {
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  if (*channel == Channel::kUnspecified) {
    return reply(errors::InvalidField("channel", "is required"));
  }
  if (absl::Status s = CheckRegion(req.default_region()); !s.ok()) {
    return reply(s);
  }
  absl::StatusOr<std::string> address =
      NormalizeAddress(*channel, req.address(), req.default_region());
  if (!address.ok()) return reply(address.status());
  absl::StatusOr<std::map<std::string, std::string>> attributes =
      AttributesFromProto(req.attributes());
  if (!attributes.ok()) return reply(attributes.status());
  absl::StatusOr<std::vector<std::string>> tags =
      TagsFromProto(req.tags(), "tags");
  if (!tags.ok()) return reply(tags.status());
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("CreateContact", req);
  if (!idem.ok()) return reply(idem.status());
  Contact c;
  c.id = NewId(kContactPrefix);
  c.account_id = ctx.principal.account_id;
  c.channel = *channel;
  c.address = *std::move(address);
  c.attributes = *std::move(attributes);
  c.tags = *std::move(tags);
  c.created_at = c.updated_at = NowMicros();
  store_->CreateContact(std::move(c), *std::move(idem),
                        Convert<v1::Contact, Contact>(std::move(reply)));
}

void Api::GetContact(const RpcContext& ctx, const v1::GetContactRequest& req,
                     Reply<v1::Contact> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  ReplyWith(store_->GetContact(ctx.principal.account_id, req.id()), reply);
}

void Api::ListContacts(const RpcContext& ctx,
                       const v1::ListContactsRequest& req,
                       Reply<v1::ListContactsResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  absl::StatusOr<Channel> channel = ChannelFromProto(req.channel(), "channel");
  if (!channel.ok()) return reply(channel.status());
  if (absl::Status s = CheckTagFilter(req.tag()); !s.ok()) return reply(s);
  if (absl::Status s = CheckIdLength("list_id", req.list_id()); !s.ok()) {
    return reply(s);
  }
  ContactFilter filter;
  filter.tag = req.tag();
  filter.list_id = req.list_id();
  filter.channel = *channel;
  ReplyPage(store_->ListContacts(ctx.principal.account_id, filter, *page),
            query, reply,
            [](v1::ListContactsResponse& r) { return r.add_items(); });
}

void Api::UpdateContact(const RpcContext& ctx,
                        const v1::UpdateContactRequest& req,
                        Reply<v1::Contact> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  absl::StatusOr<std::set<std::string>> paths =
      MaskPaths(req.update_mask(), {"address", "attributes", "tags"});
  if (!paths.ok()) return reply(paths.status());
  const bool masked = req.has_update_mask();
  auto wants = [&](const char* field, bool present) {
    return masked ? paths->count(field) > 0 : present;
  };
  const bool set_address = wants("address", !req.address().empty());
  const bool set_attributes = wants("attributes", !req.attributes().empty());
  const bool set_tags = wants("tags", !req.tags().empty());
  if (!set_address && !set_attributes && !set_tags) {
    return reply(errors::InvalidField(
        "update_mask", "nothing to update: give address, attributes or tags"));
  }
  absl::StatusOr<std::map<std::string, std::string>> attributes =
      AttributesFromProto(req.attributes());
  if (!attributes.ok()) return reply(attributes.status());
  absl::StatusOr<std::vector<std::string>> tags =
      TagsFromProto(req.tags(), "tags");
  if (!tags.ok()) return reply(tags.status());
  // The address is normalised for the stored contact's channel, inside the
  // write; numbers need their country code (there is no default_region).
  store_->UpdateContact(
      ctx.principal.account_id, req.id(),
      [set_address, raw_address = req.address(), set_attributes,
       attributes = *std::move(attributes), set_tags,
       tags = *std::move(tags)](Contact& c) -> absl::Status {
        if (set_address) {
          ASSIGN_OR_RETURN(c.address, NormalizeAddress(c.channel, raw_address,
                                                       /*default_region=*/""));
        }
        if (set_attributes) c.attributes = attributes;
        if (set_tags) c.tags = tags;
        return absl::OkStatus();
      },
      Convert<v1::Contact, Contact>(std::move(reply)));
}

void Api::DeleteContact(const RpcContext& ctx,
                        const v1::DeleteContactRequest& req,
                        Reply<google::protobuf::Empty> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  store_->DeleteContact(ctx.principal.account_id, req.id(),
                        ReplyEmpty(std::move(reply)));
}

// --- Contact lists
// -------------------------------------------------------------

void Api::CreateContactList(const RpcContext& ctx,
                            const v1::CreateContactListRequest& req,
                            Reply<v1::ContactList> reply) {
  if (req.name().empty()) {
    return reply(errors::InvalidField("name", "is required"));
  }
  if (req.name().size() > kMaxNameLength) {
    return reply(errors::InvalidField(
        "name",
        absl::StrCat("is longer than ", kMaxNameLength, " characters")));
  }
  if (req.description().size() > kMaxListDescriptionLength) {
    return reply(errors::InvalidField(
        "description", absl::StrCat("is longer than ",
                                    kMaxListDescriptionLength, " characters")));
  }
  absl::StatusOr<IdempotencyKey> idem = IdempotencyOf("CreateContactList", req);
  if (!idem.ok()) return reply(idem.status());
  ContactList l;
  l.id = NewId(kContactListPrefix);
  l.account_id = ctx.principal.account_id;
  l.name = req.name();
  l.description = req.description();
  l.created_at = l.updated_at = NowMicros();
  store_->CreateContactList(
      std::move(l), *std::move(idem),
      Convert<v1::ContactList, ContactList>(std::move(reply)));
}

void Api::GetContactList(const RpcContext& ctx,
                         const v1::GetContactListRequest& req,
                         Reply<v1::ContactList> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  ReplyWith(store_->GetContactList(ctx.principal.account_id, req.id()), reply);
}

void Api::ListContactLists(const RpcContext& ctx,
                           const v1::ListContactListsRequest& req,
                           Reply<v1::ListContactListsResponse> reply) {
  std::string query;
  absl::StatusOr<PageRequest> page = PageOf(ctx, req, &query);
  if (!page.ok()) return reply(page.status());
  ReplyPage(store_->ListContactLists(ctx.principal.account_id, *page), query,
            reply,
            [](v1::ListContactListsResponse& r) { return r.add_items(); });
}

void Api::DeleteContactList(const RpcContext& ctx,
                            const v1::DeleteContactListRequest& req,
                            Reply<google::protobuf::Empty> reply) {
  if (absl::Status s = RequireId(req.id()); !s.ok()) return reply(s);
  store_->DeleteContactList(ctx.principal.account_id, req.id(),
                            ReplyEmpty(std::move(reply)));
}

void Api::AddContactsToList(const RpcContext& ctx,
                            const v1::ContactListMembershipRequest& req,
                            Reply<v1::ContactListMembershipResponse> reply) {
  if (absl::Status s = RequireId(req.list_id(), "list_id"); !s.ok()) {
    return reply(s);
  }
  absl::StatusOr<std::vector<std::string>> ids = MemberIds(req);
  if (!ids.ok()) return reply(ids.status());
  store_->AddContactsToList(ctx.principal.account_id, req.list_id(),
                            *std::move(ids), ReplyMembership(std::move(reply)));
}

void Api::RemoveContactsFromList(
    const RpcContext& ctx, const v1::ContactListMembershipRequest& req,
    Reply<v1::ContactListMembershipResponse> reply) {
  if (absl::Status s = RequireId(req.list_id(), "list_id"); !s.ok()) {
    return reply(s);
  }
  absl::StatusOr<std::vector<std::string>> ids = MemberIds(req);
  if (!ids.ok()) return reply(ids.status());
  store_->RemoveContactsFromList(ctx.principal.account_id, req.list_id(),
                                 *std::move(ids),
                                 ReplyMembership(std::move(reply)));
}

}  // namespace campaigns::api
