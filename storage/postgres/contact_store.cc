#include "storage/postgres/contact_store.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/ids.h"
#include "server/domain/rules.h"
#include "server/domain/types.h"
#include "server/log/log.h"
#include "storage/json.h"
#include "storage/postgres/audience.h"
#include "storage/postgres/rows.h"

namespace campaigns::storage::postgres {
namespace {

// Contacts with their tags as a JSON array (in byte order, as SQLite sorts
// them), as a table expression.
constexpr char kContacts[] =
    "(SELECT c.*, COALESCE((SELECT json_agg(t.tag ORDER BY t.tag COLLATE "
    "\"C\") FROM contact_tags t WHERE t.contact_seq = c.seq), '[]') AS tags "
    "FROM contacts c) AS contacts_with_tags";

// Contact lists with their number of members, as a table expression.
constexpr char kContactLists[] =
    "(SELECT l.*, (SELECT count(*) FROM contact_list_members m WHERE "
    "m.list_id = l.id) AS contact_count FROM contact_lists l) AS lists";

// Contact import states and the idempotency method of contact imports.
constexpr char kStaging[] = "staging";
constexpr char kApplying[] = "applying";
constexpr char kImportMethod[] = "ImportContacts";

// Rows applied per write. Each row is a round trip or two, so this is
// smaller than SQLite's 4000: one chunk holds this instance's writer for
// well under a second.
constexpr int kApplyChunkRows = 1000;
// Staged rows deleted per write of a rollback.
constexpr int kAbortChunkRows = 5000;
// An import that created or updated at least this many contacts is followed
// by an ANALYZE of the contact tables: an audience resolved right after it
// on statistics from before it had been planned for a few rows (over 3 min
// for 50,000 contacts, 7 s once analyzed). Autovacuum would get there, but
// up to a minute later.
constexpr int64_t kAnalyzeAfterContacts = 10000;

Contact ReadContact(const Rows& rows, int row) {
  Contact c;
  c.id = rows.Text(row, "id");
  c.account_id = rows.Text(row, "account_id");
  ParseChannel(rows.Text(row, "channel"), &c.channel);
  c.address = rows.Text(row, "address");
  c.attributes = MapFromJson(rows.Text(row, "attributes"));
  c.tags = ListFromJson(rows.Text(row, "tags"));
  c.created_at = TimeAt(rows, row, "created_at");
  c.updated_at = TimeAt(rows, row, "updated_at");
  return c;
}

ContactList ReadContactList(const Rows& rows, int row) {
  ContactList l;
  l.id = rows.Text(row, "id");
  l.account_id = rows.Text(row, "account_id");
  l.name = rows.Text(row, "name");
  l.description = rows.Text(row, "description");
  l.contact_count = IntAt(rows, row, "contact_count");
  l.created_at = TimeAt(rows, row, "created_at");
  l.updated_at = TimeAt(rows, row, "updated_at");
  return l;
}

void SortUnique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

absl::StatusOr<Contact> LoadContact(Connection& c,
                                    const std::string& account_id,
                                    const std::string& id) {
  return LoadRow<Contact>(c, kContacts, "contact", account_id, id,
                          &ReadContact);
}

absl::StatusOr<ContactList> LoadContactList(Connection& c,
                                            const std::string& account_id,
                                            const std::string& id) {
  return LoadRow<ContactList>(c, kContactLists, "contact list", account_id, id,
                              &ReadContactList);
}

absl::Status AddressTaken(const Contact& c, const std::string& existing) {
  return errors::AlreadyExists(
      "address",
      absl::StrCat("a contact with address ", errors::Quote(c.address), " on ",
                   ChannelName(c.channel), " already exists",
                   existing.empty() ? "" : absl::StrCat(": ", existing)));
}

// UNIQUE (account_id, channel, address) as a field error naming `address`.
// `c.id` itself does not count.
absl::Status CheckAddressFree(Connection& conn, const Contact& c) {
  absl::StatusOr<Rows> rows = conn.Query(
      "SELECT id FROM contacts WHERE account_id = $1 AND channel = $2 AND "
      "address = $3 AND id <> $4",
      {c.account_id, std::string(ChannelName(c.channel)), c.address, c.id});
  if (!rows.ok()) return rows.status();
  if (rows->size() > 0) return AddressTaken(c, rows->Text(0, 0));
  return absl::OkStatus();
}

// Replaces the tags of the contact numbered `seq` with `tags`.
absl::Status WriteTags(Connection& c, const std::string& account_id,
                       int64_t seq, const std::vector<std::string>& tags) {
  RETURN_IF_ERROR(c.Query("DELETE FROM contact_tags WHERE contact_seq = $1",
                          {absl::StrCat(seq)})
                      .status());
  if (tags.empty()) return absl::OkStatus();
  return c
      .Query(
          "INSERT INTO contact_tags(account_id, tag, contact_seq) SELECT $1, "
          "t, $3::bigint FROM jsonb_array_elements_text($2::jsonb) AS t "
          "ON CONFLICT DO NOTHING",
          {account_id, ListToJson(tags), absl::StrCat(seq)})
      .status();
}

// Adds (or removes) the memberships of `contact_ids` in list `list_id` of
// `account_id` and returns the change and the list afterwards. The list's
// row is locked first, so changes of one list (from any instance) and its
// deletion run one after the other.
absl::StatusOr<ListMembershipChange> ChangeMembership(
    Connection& c, const std::string& account_id, const std::string& list_id,
    const std::vector<std::string>& contact_ids, bool add) {
  RETURN_IF_ERROR(LockList(c, account_id, list_id, "FOR NO KEY UPDATE"));
  const std::string ids_json = ListToJson(contact_ids);
  // The contacts found stay until this transaction ends (a delete from
  // another instance waits), so every id the check below passes is changed.
  RETURN_IF_ERROR(c.Query("SELECT 1 FROM contacts WHERE account_id = $1 AND "
                          "id IN (SELECT jsonb_array_elements_text($2::jsonb)) "
                          "ORDER BY seq FOR KEY SHARE",
                          {account_id, ids_json})
                      .status());
  // The first unknown id, in the order given.
  absl::StatusOr<Rows> missing = c.Query(
      "SELECT j.id FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY "
      "AS j(id, n) WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE "
      "c.account_id = $1 AND c.id = j.id) ORDER BY j.n LIMIT 1",
      {account_id, ids_json});
  if (!missing.ok()) return missing.status();
  if (missing->size() > 0) {
    return errors::NotFound("contact", missing->Text(0, 0));
  }
  const std::string now = Micros(NowMicros());
  absl::StatusOr<Rows> changed =
      add ? c.Query(
                "INSERT INTO contact_list_members(list_id, contact_seq, "
                "added_at) SELECT $1, c.seq, $4::bigint FROM contacts c WHERE "
                "c.account_id = $2 AND c.id IN (SELECT "
                "jsonb_array_elements_text($3::jsonb)) ORDER BY c.seq ON "
                "CONFLICT DO NOTHING",
                {list_id, account_id, ids_json, now})
          : c.Query(
                "DELETE FROM contact_list_members WHERE list_id = $1 AND "
                "contact_seq IN (SELECT c.seq FROM contacts c WHERE "
                "c.account_id = $2 AND c.id IN (SELECT "
                "jsonb_array_elements_text($3::jsonb)))",
                {list_id, account_id, ids_json});
  if (!changed.ok()) return changed.status();
  ListMembershipChange out;
  out.changed = changed->affected();
  if (out.changed > 0) {
    RETURN_IF_ERROR(c.Query("UPDATE contact_lists SET updated_at = $1 WHERE "
                            "id = $2 AND account_id = $3",
                            {now, list_id, account_id})
                        .status());
  }
  ASSIGN_OR_RETURN(out.list, LoadContactList(c, account_id, list_id));
  return out;
}

// One step of applying an import: the counts so far (this chunk
// included), and whether it was the last, or the import was no longer
// applying (finished by another instance, or never committed).
struct ApplyStep {
  ContactImportResult total;
  bool finished = false;
  bool gone = false;
};

// Applies the next chunk of rows of `lease` in the current transaction; the
// last chunk also records the idempotency record and deletes the import.
absl::StatusOr<ApplyStep> ApplyNext(Connection& c,
                                    const ContactImportLease& lease,
                                    const ImportResponseFinisher& finish) {
  const std::string id = absl::StrCat(lease.id);
  // FOR UPDATE: instances resuming the same import apply each chunk once.
  absl::StatusOr<Rows> head = c.Query(
      "SELECT state, applied_through, created, updated, request_id, "
      "body_hash, encode(response, 'hex') AS response FROM contact_imports "
      "WHERE id = $1 FOR UPDATE",
      {id});
  if (!head.ok()) return head.status();
  ApplyStep step;
  if (head->size() == 0 || head->Text(0, "state") != kApplying) {
    step.gone = true;
    return step;
  }
  const int64_t applied_through = IntAt(*head, 0, "applied_through");
  step.total.created = IntAt(*head, 0, "created");
  step.total.updated = IntAt(*head, 0, "updated");
  const std::string request_id = head->Text(0, "request_id");
  const std::string body_hash = head->Text(0, "body_hash");
  std::string recorded;
  recorded = absl::HexStringToBytes(head->Text(0, "response"));

  const std::string now = Micros(NowMicros());
  const std::string channel(ChannelName(lease.channel));
  bool with_list = false;
  if (!lease.list_id.empty()) {
    absl::Status locked =
        LockList(c, lease.account_id, lease.list_id, "FOR KEY SHARE");
    if (!locked.ok() && locked.code() != absl::StatusCode::kNotFound) {
      return locked;
    }
    with_list = locked.ok();  // a list deleted meanwhile is left out
  }

  // The next rows by row number, taken in address order: every instance
  // applying an import locks the contacts of a chunk in one order, so
  // overlapping imports wait for each other rather than deadlock.
  absl::StatusOr<Rows> rows = c.Query(
      "SELECT row, address, attributes FROM (SELECT row, address, "
      "attributes FROM contact_import_rows WHERE import_id = $1 AND row > $2 "
      "ORDER BY row LIMIT $3) AS chunk ORDER BY address COLLATE \"C\"",
      {id, absl::StrCat(applied_through), absl::StrCat(kApplyChunkRows)});
  if (!rows.ok()) return rows.status();
  std::vector<int64_t> seqs;
  int64_t last_row = applied_through;
  for (int i = 0; i < rows->size(); ++i) {
    last_row = std::max(last_row, IntAt(*rows, i, "row"));
    const std::string address = rows->Text(i, "address");
    const std::string attributes = rows->Text(i, "attributes");
    // Creates the contact, or locks the existing one (also one another
    // instance is inserting: ON CONFLICT waits for it) and returns it.
    absl::StatusOr<Rows> upsert = c.Query(
        "INSERT INTO contacts(id, account_id, channel, address, attributes, "
        "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON "
        "CONFLICT (account_id, channel, address) DO UPDATE SET updated_at = "
        "contacts.updated_at RETURNING seq, attributes, xmax = 0 AS created",
        {NewId(kContactPrefix), lease.account_id, channel, address, attributes,
         now});
    if (!upsert.ok()) return upsert.status();
    const int64_t seq = IntAt(*upsert, 0, "seq");
    seqs.push_back(seq);
    if (BoolAt(*upsert, 0, "created")) {
      ++step.total.created;
      continue;
    }
    ++step.total.updated;
    std::map<std::string, std::string> merged =
        MapFromJson(upsert->Text(0, "attributes"));
    const std::map<std::string, std::string> before = merged;
    for (auto& [k, v] : MapFromJson(attributes)) merged[k] = std::move(v);
    if (merged != before) {
      RETURN_IF_ERROR(c.Query("UPDATE contacts SET attributes = $1, "
                              "updated_at = $2 WHERE seq = $3",
                              {MapToJson(merged), now, absl::StrCat(seq)})
                          .status());
    }
  }
  if (!seqs.empty() && !lease.tags.empty()) {
    RETURN_IF_ERROR(
        c.Query("INSERT INTO contact_tags(account_id, tag, contact_seq) "
                "SELECT $1, t, s FROM jsonb_array_elements_text($2::jsonb) "
                "AS t, unnest($3::bigint[]) AS s ORDER BY s, t ON CONFLICT "
                "DO NOTHING",
                {lease.account_id, ListToJson(lease.tags), IntArray(seqs)})
            .status());
  }
  if (!seqs.empty() && with_list) {
    RETURN_IF_ERROR(
        c.Query("INSERT INTO contact_list_members(list_id, contact_seq, "
                "added_at) SELECT $1, s, $3::bigint FROM "
                "unnest($2::bigint[]) AS s ORDER BY s ON CONFLICT DO NOTHING",
                {lease.list_id, IntArray(seqs), now})
            .status());
  }
  RETURN_IF_ERROR(c.Query("DELETE FROM contact_import_rows WHERE import_id = "
                          "$1 AND row <= $2",
                          {id, absl::StrCat(last_row)})
                      .status());

  step.finished = rows->size() < kApplyChunkRows;
  if (!step.finished) {
    RETURN_IF_ERROR(
        c.Query("UPDATE contact_imports SET applied_through = $1, "
                "created = $2, updated = $3 WHERE id = $4",
                {absl::StrCat(last_row), absl::StrCat(step.total.created),
                 absl::StrCat(step.total.updated), id})
            .status());
    return step;
  }
  if (!request_id.empty()) {
    const std::string response = finish(recorded, step.total);
    RETURN_IF_ERROR(
        c.Query("INSERT INTO idempotency_keys(account_id, method, "
                "request_id, body_hash, resource_id, created_at, response) "
                "VALUES ($1, $2, $3, $4, '', $5, decode($6, 'hex')) ON "
                "CONFLICT DO NOTHING",
                {lease.account_id, kImportMethod, request_id, body_hash, now,
                 absl::BytesToHexString(response)})
            .status());
  }
  RETURN_IF_ERROR(
      c.Query("DELETE FROM contact_imports WHERE id = $1", {id}).status());
  return step;
}

}  // namespace

// --- Contacts ----------------------------------------------------------------

void ContactStore::CreateContact(Contact c, IdempotencyKey idem,
                                 Done<Contact> done) {
  SortUnique(c.tags);
  db_->Write<Contact>(
      [c = std::move(c),
       idem = std::move(idem)](Connection& conn) -> absl::StatusOr<Contact> {
        return Idempotent<Contact>(
            conn, c.account_id, idem,
            [&conn, &c](const std::string& id) {
              return LoadContact(conn, c.account_id, id);
            },
            [&]() -> absl::StatusOr<Contact> {
              // One statement: a contact another instance inserts meanwhile
              // is waited for and then met as a conflict.
              absl::StatusOr<Rows> inserted = conn.Query(
                  "INSERT INTO contacts(id, account_id, channel, address, "
                  "attributes, created_at, updated_at) VALUES ($1, $2, $3, "
                  "$4, $5, $6, $7) ON CONFLICT (account_id, channel, "
                  "address) DO NOTHING RETURNING seq",
                  {c.id, c.account_id, std::string(ChannelName(c.channel)),
                   c.address, MapToJson(c.attributes), Micros(c.created_at),
                   Micros(c.updated_at)});
              if (!inserted.ok()) return inserted.status();
              if (inserted->size() == 0) {
                RETURN_IF_ERROR(CheckAddressFree(conn, c));
                return AddressTaken(c, "");
              }
              RETURN_IF_ERROR(WriteTags(conn, c.account_id,
                                        IntAt(*inserted, 0, "seq"), c.tags));
              return c;
            },
            [](const Contact& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Contact> ContactStore::GetContact(const std::string& account_id,
                                                 const std::string& id) {
  return db_->Read<Contact>(
      [&](Connection& c) { return LoadContact(c, account_id, id); });
}

absl::StatusOr<Page<Contact>> ContactStore::ListContacts(
    const std::string& account_id, const ContactFilter& filter,
    const PageRequest& page) {
  return db_->Read<Page<Contact>>(
      [&](Connection& c) -> absl::StatusOr<Page<Contact>> {
        if (!filter.list_id.empty()) {
          RETURN_IF_ERROR(
              LoadContactList(c, account_id, filter.list_id).status());
        }
        return ListPage<Contact>(
            c,
            absl::StrCat(
                kContacts,
                " WHERE account_id = $1 AND ($2 = '' OR channel = $2) AND "
                "($3 = '' OR seq IN (SELECT contact_seq FROM contact_tags "
                "WHERE account_id = $1 AND tag = $3)) AND ($4 = '' OR seq IN "
                "(SELECT contact_seq FROM contact_list_members WHERE "
                "list_id = $4))"),
            "seq DESC",
            {account_id,
             filter.channel == Channel::kUnspecified
                 ? std::string()
                 : std::string(ChannelName(filter.channel)),
             filter.tag, filter.list_id},
            &ReadContact, page);
      });
}

void ContactStore::UpdateContact(const std::string& account_id,
                                 const std::string& id,
                                 std::function<absl::Status(Contact&)> mutate,
                                 Done<Contact> done) {
  db_->Write<Contact>(
      [account_id, id, mutate = std::move(mutate)](
          Connection& conn) -> absl::StatusOr<Contact> {
        // FOR UPDATE: another instance's update of the same contact waits
        // for this one and then mutates what it wrote.
        absl::StatusOr<Rows> locked = conn.Query(
            "SELECT seq FROM contacts WHERE id = $1 AND account_id = $2 FOR "
            "UPDATE",
            {id, account_id});
        if (!locked.ok()) return locked.status();
        if (account_id.empty() || locked->size() == 0) {
          return errors::NotFound("contact", id);
        }
        const int64_t seq = IntAt(*locked, 0, "seq");
        ASSIGN_OR_RETURN(Contact c, LoadContact(conn, account_id, id));
        const Contact before = c;
        RETURN_IF_ERROR(mutate(c));
        // What identifies the contact stays.
        c.id = before.id;
        c.account_id = before.account_id;
        c.channel = before.channel;
        c.created_at = before.created_at;
        SortUnique(c.tags);
        RETURN_IF_ERROR(CheckAddressFree(conn, c));
        c.updated_at = NowMicros();
        absl::Status updated =
            conn.Query(
                    "UPDATE contacts SET address = $1, attributes = $2, "
                    "updated_at = $3 WHERE seq = $4",
                    {c.address, MapToJson(c.attributes), Micros(c.updated_at),
                     absl::StrCat(seq)})
                .status();
        if (updated.code() == absl::StatusCode::kAlreadyExists) {
          return AddressTaken(c, "");  // taken by a concurrent instance
        }
        RETURN_IF_ERROR(updated);
        if (c.tags != before.tags) {
          RETURN_IF_ERROR(WriteTags(conn, account_id, seq, c.tags));
        }
        return c;
      },
      std::move(done));
}

void ContactStore::DeleteContact(const std::string& account_id,
                                 const std::string& id, StatusDone done) {
  db_->WriteRaw(
      [account_id, id](Connection& c) -> absl::Status {
        // Tags and memberships go with it (ON DELETE CASCADE).
        absl::StatusOr<Rows> deleted =
            c.Query("DELETE FROM contacts WHERE id = $1 AND account_id = $2",
                    {id, account_id});
        if (!deleted.ok()) return deleted.status();
        if (account_id.empty() || deleted->affected() == 0) {
          return errors::NotFound("contact", id);
        }
        return absl::OkStatus();
      },
      std::move(done));
}

// --- Contact lists -----------------------------------------------------------

void ContactStore::CreateContactList(ContactList l, IdempotencyKey idem,
                                     Done<ContactList> done) {
  db_->Write<ContactList>(
      [l = std::move(l),
       idem = std::move(idem)](Connection& c) -> absl::StatusOr<ContactList> {
        return Idempotent<ContactList>(
            c, l.account_id, idem,
            [&c, &l](const std::string& id) {
              return LoadContactList(c, l.account_id, id);
            },
            [&]() -> absl::StatusOr<ContactList> {
              RETURN_IF_ERROR(
                  c.Query("INSERT INTO contact_lists(id, account_id, name, "
                          "description, created_at, updated_at) VALUES ($1, "
                          "$2, $3, $4, $5, $6)",
                          {l.id, l.account_id, l.name, l.description,
                           Micros(l.created_at), Micros(l.updated_at)})
                      .status());
              ContactList out = l;
              out.contact_count = 0;
              return out;
            },
            [](const ContactList& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<ContactList> ContactStore::GetContactList(
    const std::string& account_id, const std::string& id) {
  return db_->Read<ContactList>(
      [&](Connection& c) { return LoadContactList(c, account_id, id); });
}

absl::StatusOr<Page<ContactList>> ContactStore::ListContactLists(
    const std::string& account_id, const PageRequest& page) {
  return db_->Read<Page<ContactList>>([&](Connection& c) {
    // COLLATE "C": ties in time in byte order, as SQLite orders them.
    return ListPage<ContactList>(
        c, absl::StrCat(kContactLists, " WHERE account_id = $1"),
        "created_at DESC, id COLLATE \"C\" DESC", {account_id},
        &ReadContactList, page);
  });
}

void ContactStore::DeleteContactList(const std::string& account_id,
                                     const std::string& id, StatusDone done) {
  db_->WriteRaw(
      [account_id, id](Connection& c) -> absl::Status {
        RETURN_IF_ERROR(LockList(c, account_id, id, "FOR UPDATE"));
        RETURN_IF_ERROR(CheckUnusedByLiveCampaign(
            c, account_id, "contact_list_id", id, "contact list"));
        // Memberships go with it (ON DELETE CASCADE).
        return c
            .Query(
                "DELETE FROM contact_lists WHERE id = $1 AND account_id = $2",
                {id, account_id})
            .status();
      },
      std::move(done));
}

void ContactStore::AddContactsToList(const std::string& account_id,
                                     const std::string& list_id,
                                     std::vector<std::string> contact_ids,
                                     Done<ListMembershipChange> done) {
  db_->Write<ListMembershipChange>(
      [account_id, list_id,
       contact_ids = std::move(contact_ids)](Connection& c) {
        return ChangeMembership(c, account_id, list_id, contact_ids,
                                /*add=*/true);
      },
      std::move(done));
}

void ContactStore::RemoveContactsFromList(const std::string& account_id,
                                          const std::string& list_id,
                                          std::vector<std::string> contact_ids,
                                          Done<ListMembershipChange> done) {
  db_->Write<ListMembershipChange>(
      [account_id, list_id,
       contact_ids = std::move(contact_ids)](Connection& c) {
        return ChangeMembership(c, account_id, list_id, contact_ids,
                                /*add=*/false);
      },
      std::move(done));
}

// --- Audience ----------------------------------------------------------------

void ContactStore::MaterializeAudience(const std::string& account_id,
                                       const std::string& campaign_id,
                                       Done<MaterializeResult> done) {
  db_->Write<MaterializeResult>(
      [account_id, campaign_id](Connection& c) {
        return MaterializeAudienceIn(c, account_id, campaign_id);
      },
      std::move(done));
}

// --- Contact imports ---------------------------------------------------------

void ContactStore::BeginContactImport(ContactImportLease lease,
                                      Done<ContactImportLease> done) {
  db_->Write<ContactImportLease>(
      [lease = std::move(lease), owner = owner_.instance](
          Connection& c) -> absl::StatusOr<ContactImportLease> {
        if (!lease.list_id.empty()) {
          RETURN_IF_ERROR(
              LockList(c, lease.account_id, lease.list_id, "FOR KEY SHARE"));
        }
        absl::StatusOr<Rows> rows = c.Query(
            "INSERT INTO contact_imports(account_id, channel, list_id, tags, "
            "state, created_at, owner) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "RETURNING id",
            {lease.account_id, std::string(ChannelName(lease.channel)),
             lease.list_id, ListToJson(lease.tags), kStaging,
             Micros(NowMicros()), owner});
        if (!rows.ok()) return rows.status();
        ContactImportLease out = lease;  // not moved: the op may run twice
        out.id = IntAt(*rows, 0, "id");
        return out;
      },
      std::move(done));
}

void ContactStore::StageContacts(const ContactImportLease& lease,
                                 int64_t first_row,
                                 std::vector<StagedRecipient> rows,
                                 Done<std::vector<int32_t>> done) {
  std::vector<std::string> addresses;
  std::vector<std::string> attributes;
  addresses.reserve(rows.size());
  attributes.reserve(rows.size());
  for (StagedRecipient& r : rows) {
    addresses.push_back(std::move(r.address));
    attributes.push_back(std::move(r.variables_json));
  }
  const size_t n = addresses.size();
  db_->Write<std::vector<int32_t>>(
      [id = lease.id, first_row, n, addresses = ListToJson(addresses),
       attributes = ListToJson(attributes), owner = owner_.instance](
          Connection& c) -> absl::StatusOr<std::vector<int32_t>> {
        if (n == 0) return std::vector<int32_t>{};
        // FOR SHARE: a rollback's chunk (FOR UPDATE) waits for these rows,
        // or these wait and find the import gone or taken over.
        absl::StatusOr<Rows> live = c.Query(
            "SELECT 1 FROM contact_imports WHERE id = $1 AND state = $2 AND "
            "owner = $3 FOR SHARE",
            {absl::StrCat(id), kStaging, owner});
        if (!live.ok()) return live.status();
        if (live->size() == 0) {
          return absl::AbortedError(absl::StrCat(
              "contact import ", id, " was rolled back before it finished"));
        }
        // One statement; a row whose address (or row number) the import
        // already has, earlier in this batch included, is left out.
        absl::StatusOr<Rows> staged = c.Query(
            "INSERT INTO contact_import_rows(import_id, row, address, "
            "attributes) SELECT $1::bigint, $2::bigint + r.i - 1, r.address, "
            "r.attributes FROM ROWS FROM (jsonb_array_elements_text("
            "$3::jsonb), jsonb_array_elements_text($4::jsonb)) WITH "
            "ORDINALITY AS r(address, attributes, i) ORDER BY r.i ON "
            "CONFLICT DO NOTHING RETURNING row",
            {absl::StrCat(id), absl::StrCat(first_row), addresses, attributes});
        if (!staged.ok()) return staged.status();
        std::vector<bool> kept(n, false);
        for (int i = 0; i < staged->size(); ++i) {
          const int64_t index = IntAt(*staged, i, "row") - first_row;
          if (index >= 0 && index < static_cast<int64_t>(n)) kept[index] = true;
        }
        std::vector<int32_t> duplicates;
        for (size_t i = 0; i < n; ++i) {
          if (!kept[i]) duplicates.push_back(static_cast<int32_t>(i));
        }
        return duplicates;
      },
      std::move(done));
}

void ContactStore::CommitContactImport(const ContactImportLease& lease,
                                       const std::string& request_id,
                                       const ImportRecord& record,
                                       ImportResponseFinisher finish,
                                       Done<ContactImportResult> done) {
  db_->Write<bool>(
      [lease, request_id, record,
       owner = owner_.instance](Connection& c) -> absl::StatusOr<bool> {
        if (!request_id.empty()) {
          // The key Idempotent locks: an import committing the same request
          // id on another instance waits here, then sees it taken.
          RETURN_IF_ERROR(
              c.Query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                      {absl::StrCat(lease.account_id, "\n", kImportMethod, "\n",
                                    request_id)})
                  .status());
          absl::StatusOr<Rows> taken = c.Query(
              "SELECT 1 FROM idempotency_keys WHERE account_id = $1 AND "
              "method = $2 AND request_id = $3 UNION ALL SELECT 1 FROM "
              "contact_imports WHERE account_id = $1 AND request_id = $3",
              {lease.account_id, kImportMethod, request_id});
          if (!taken.ok()) return taken.status();
          if (taken->size() > 0) return errors::IdempotencyConflict(request_id);
        }
        absl::StatusOr<Rows> committed = c.Query(
            "UPDATE contact_imports SET state = $1, request_id = $2, "
            "body_hash = $3, response = decode($4, 'hex') WHERE id = $5 AND "
            "state = $6 AND owner = $7",
            {kApplying, request_id, record.body_hash,
             absl::BytesToHexString(record.response), absl::StrCat(lease.id),
             kStaging, owner});
        if (!committed.ok()) return committed.status();
        if (committed->affected() == 0) {
          return absl::AbortedError(absl::StrCat(
              "contact import ", lease.id, " was rolled back before commit"));
        }
        return true;
      },
      [db = db_, lease, finish = std::move(finish),
       done = std::move(done)](absl::StatusOr<bool> committed) mutable {
        if (!committed.ok()) return done(committed.status());
        ApplyChunk(db, std::move(lease), std::move(finish), std::move(done));
      });
}

void ContactStore::ApplyChunk(Database* db, ContactImportLease lease,
                              ImportResponseFinisher finish,
                              Done<ContactImportResult> done) {
  db->Write<ApplyStep>(
      [lease, finish](Connection& c) { return ApplyNext(c, lease, finish); },
      [db, lease, finish,
       done = std::move(done)](absl::StatusOr<ApplyStep> step) mutable {
        if (!step.ok()) {
          // Committed: it must finish applying. The caller hears of the
          // failure; the rest is applied once writes succeed again (or, if
          // this process stops first, when the import is resumed).
          if (done) done(step.status());
          db->AgainLater(
              "contact import apply", step.status(),
              [db, lease, finish] { ApplyChunk(db, lease, finish, nullptr); });
        } else if (step->gone) {
          if (done) {
            done(absl::AbortedError(absl::StrCat("contact import ", lease.id,
                                                 " is no longer applying")));
          }
        } else if (!step->finished) {
          ApplyChunk(db, std::move(lease), std::move(finish), std::move(done));
        } else if (step->total.created + step->total.updated <
                   kAnalyzeAfterContacts) {
          if (done) done(step->total);
        } else {
          Analyze(db, lease, step->total, std::move(done));
        }
      });
}

void ContactStore::Analyze(Database* db, const ContactImportLease& lease,
                           ContactImportResult total,
                           Done<ContactImportResult> done) {
  db->Write<bool>(
      [](Connection& c) -> absl::StatusOr<bool> {
        RETURN_IF_ERROR(
            c.Exec("ANALYZE (SKIP_LOCKED) contacts, contact_tags, "
                   "contact_list_members"));
        return true;
      },
      [lease, total,
       done = std::move(done)](absl::StatusOr<bool> analyzed) mutable {
        // The import stands either way; only later plans may be poorer
        // until autovacuum analyzes the tables.
        if (!analyzed.ok()) {
          logging::Warn("contact tables not analyzed after an import",
                        {{"account_id", lease.account_id},
                         {"import", lease.id},
                         {"error", analyzed.status().ToString()}});
        }
        if (done) done(total);
      });
}

void ContactStore::AbortContactImport(const ContactImportLease& lease,
                                      StatusDone done) {
  AbortChunk(db_, lease.id, std::move(done));
}

void ContactStore::AbortChunk(Database* db, int64_t import_id,
                              StatusDone done) {
  db->Write<bool>(
      [import_id](Connection& c) -> absl::StatusOr<bool> {
        const std::string id = absl::StrCat(import_id);
        // FOR UPDATE: a commit of the import waits for this chunk (and then
        // finds it staging, or gone).
        absl::StatusOr<Rows> state = c.Query(
            "SELECT state FROM contact_imports WHERE id = $1 FOR UPDATE", {id});
        if (!state.ok()) return state.status();
        if (state->size() == 0 || state->Text(0, 0) != kStaging) {
          return true;  // gone, or committed: it will be applied
        }
        absl::StatusOr<Rows> deleted = c.Query(
            "DELETE FROM contact_import_rows WHERE import_id = $1 AND row IN "
            "(SELECT row FROM contact_import_rows WHERE import_id = $1 "
            "ORDER BY row LIMIT $2)",
            {id, absl::StrCat(kAbortChunkRows)});
        if (!deleted.ok()) return deleted.status();
        if (deleted->affected() == kAbortChunkRows) return false;
        RETURN_IF_ERROR(
            c.Query("DELETE FROM contact_imports WHERE id = $1", {id})
                .status());
        return true;
      },
      [db, import_id,
       done = std::move(done)](absl::StatusOr<bool> finished) mutable {
        if (!finished.ok()) {
          // Staged rows and the import's row stay until the rollback ends.
          absl::Status error = finished.status();
          db->AgainLater(
              "contact import rollback", error,
              [db, import_id, done] { AbortChunk(db, import_id, done); },
              [done, error] {
                if (done) done(error);
              });
        } else if (!*finished) {
          AbortChunk(db, import_id, std::move(done));
        } else if (done) {
          done(absl::OkStatus());
        }
      });
}

absl::StatusOr<int> ContactStore::ResumeContactImports(
    ImportResponseFinisher finish) {
  struct Taken {
    ContactImportLease lease;
    bool committed = false;  // applying; else staging
    std::string was;         // the owner it had
  };
  // Taken over (this instance their owner now) in one statement: of two
  // instances recovering at once, one takes each import.
  ASSIGN_OR_RETURN(
      std::vector<Taken> taken,
      db_->WriteSync<std::vector<Taken>>(
          [owner =
               owner_](Connection& c) -> absl::StatusOr<std::vector<Taken>> {
            absl::StatusOr<Rows> rows =
                TakeOver(c,
                         {.table = "contact_imports",
                          .key = "id",
                          .owner_column = "owner",
                          .where = "",
                          .lock = "FOR UPDATE",
                          .returning = "c.id, c.account_id, c.channel, "
                                       "c.list_id, c.tags, c.state"},
                         owner);
            if (!rows.ok()) return rows.status();
            std::vector<Taken> out;
            for (int i = 0; i < rows->size(); ++i) {
              Taken t;
              t.lease.id = IntAt(*rows, i, "id");
              t.lease.account_id = rows->Text(i, "account_id");
              ParseChannel(rows->Text(i, "channel"), &t.lease.channel);
              t.lease.list_id = rows->Text(i, "list_id");
              t.lease.tags = ListFromJson(rows->Text(i, "tags"));
              t.committed = rows->Text(i, "state") == kApplying;
              t.was = rows->Text(i, "was");
              out.push_back(std::move(t));
            }
            return out;
          }));
  for (Taken& t : taken) {
    logging::Warn(t.committed
                      ? "finishing a contact import that its instance left "
                        "half-applied (stopped, or no heartbeat within the "
                        "lease ttl)"
                      : "rolling back a contact import that its instance left "
                        "unfinished (stopped, or no heartbeat within the "
                        "lease ttl)",
                  {{"account_id", t.lease.account_id},
                   {"import", t.lease.id},
                   {"owner", t.was}});
    if (t.committed) {
      ApplyChunk(db_, std::move(t.lease), finish, nullptr);
    } else {
      AbortChunk(db_, t.lease.id, nullptr);
    }
  }
  return static_cast<int>(taken.size());
}

}  // namespace campaigns::storage::postgres
