// Store: contacts, contact lists, and turning a campaign's contact audience
// into recipients (MaterializeAudience).
//
// A contact's tags live in contact_tags and list memberships in
// contact_list_members, both keyed by the contact's seq and removed with it
// (ON DELETE CASCADE). Reads go through kContacts / kContactLists, which add
// the computed `tags` and `contact_count` columns that ReadContact and
// ReadContactList expect.
#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/domain/errors.h"
#include "server/domain/rules.h"
#include "storage/sqlite/rows.h"
#include "storage/sqlite/store.h"
#include "storage/sqlite/store_internal.h"

namespace campaigns::storage {
namespace {

using internal::LoadById;

// Contacts with their tags as a JSON array (sorted), as a table expression.
constexpr char kContacts[] =
    "(SELECT c.*, (SELECT json_group_array(tag) FROM (SELECT t.tag FROM "
    "contact_tags t WHERE t.contact_seq = c.seq ORDER BY t.tag)) AS tags "
    "FROM contacts c)";

// Contact lists with their number of members, as a table expression.
constexpr char kContactLists[] =
    "(SELECT l.*, (SELECT COUNT(*) FROM contact_list_members m "
    "WHERE m.list_id = l.id) AS contact_count FROM contact_lists l)";

void SortUnique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

absl::StatusOr<Contact> LoadContact(SQLite::Database& db,
                                    const std::string& account_id,
                                    const std::string& id) {
  return LoadById<Contact>(db, kContacts, "contact", account_id, id,
                           &ReadContact);
}

absl::StatusOr<ContactList> LoadContactList(SQLite::Database& db,
                                            const std::string& account_id,
                                            const std::string& id) {
  return LoadById<ContactList>(db, kContactLists, "contact list", account_id,
                               id, &ReadContactList);
}

// UNIQUE(account_id, channel, address) as a field error naming `address`
// instead of a bare constraint failure. `c.id` itself does not count.
absl::Status CheckAddressFree(SQLite::Database& db, const Contact& c) {
  SQLite::Statement st(db,
                       "SELECT id FROM contacts WHERE account_id=? AND "
                       "channel=? AND address=? AND id<>?");
  st.bind(1, c.account_id);
  st.bind(2, std::string(ChannelName(c.channel)));
  st.bind(3, c.address);
  st.bind(4, c.id);
  if (st.executeStep()) {
    return errors::AlreadyExists(
        "address",
        absl::StrCat("a contact with address ", errors::Quote(c.address),
                     " on ", ChannelName(c.channel),
                     " already exists: ", st.getColumn(0).getString()));
  }
  return absl::OkStatus();
}

// Replaces the tags of the contact numbered `seq` with `tags`.
void WriteTags(SQLite::Database& db, const std::string& account_id, int64_t seq,
               const std::vector<std::string>& tags) {
  SQLite::Statement clear(db, "DELETE FROM contact_tags WHERE contact_seq=?");
  clear.bind(1, seq);
  clear.exec();
  SQLite::Statement add(db,
                        "INSERT OR IGNORE INTO contact_tags(account_id, tag, "
                        "contact_seq) VALUES(?,?,?)");
  for (const std::string& tag : tags) {
    add.bind(1, account_id);
    add.bind(2, tag);
    add.bind(3, seq);
    add.exec();
    add.reset();
  }
}

}  // namespace

namespace internal {

absl::Status CheckContactsExist(SQLite::Database& db,
                                const std::string& account_id,
                                const std::string& contact_ids_json) {
  SQLite::Statement st(db,
                       "SELECT j.value FROM json_each(?1) j WHERE NOT EXISTS "
                       "(SELECT 1 FROM contacts c WHERE c.account_id=?2 AND "
                       "c.id=j.value) LIMIT 1");
  st.bind(1, contact_ids_json);
  st.bind(2, account_id);
  if (st.executeStep()) {
    return errors::NotFound("contact", st.getColumn(0).getString());
  }
  return absl::OkStatus();
}

}  // namespace internal

namespace {

// Adds (or removes) the memberships of `contact_ids` in list `list_id` of
// `account_id` and returns the change and the list afterwards.
absl::StatusOr<ListMembershipChange> ChangeMembership(
    SQLite::Database& db, const std::string& account_id,
    const std::string& list_id, const std::vector<std::string>& contact_ids,
    bool add) {
  RETURN_IF_ERROR(LoadContactList(db, account_id, list_id).status());
  const std::string ids_json = ListToJson(contact_ids);
  RETURN_IF_ERROR(internal::CheckContactsExist(db, account_id, ids_json));
  const int64_t now = ToMicros(NowMicros());
  SQLite::Statement st(
      db, add ? "INSERT OR IGNORE INTO contact_list_members(list_id, "
                "contact_seq, added_at) SELECT ?1, c.seq, ?4 FROM contacts c "
                "WHERE c.account_id=?2 AND c.id IN (SELECT value FROM "
                "json_each(?3)) ORDER BY c.seq"
              : "DELETE FROM contact_list_members WHERE list_id=?1 AND "
                "contact_seq IN (SELECT c.seq FROM contacts c WHERE "
                "c.account_id=?2 AND c.id IN (SELECT value FROM "
                "json_each(?3)))");
  st.bind(1, list_id);
  st.bind(2, account_id);
  st.bind(3, ids_json);
  if (add) st.bind(4, static_cast<int64_t>(now));
  ListMembershipChange out;
  out.changed = st.exec();
  if (out.changed > 0) {
    SQLite::Statement touch(
        db,
        "UPDATE contact_lists SET updated_at=? WHERE id=? AND account_id=?");
    touch.bind(1, static_cast<int64_t>(now));
    touch.bind(2, list_id);
    touch.bind(3, account_id);
    touch.exec();
  }
  ASSIGN_OR_RETURN(out.list, LoadContactList(db, account_id, list_id));
  return out;
}

}  // namespace

// --- Contacts ------------------------------------------------------------

void Store::CreateContact(Contact c, IdempotencyKey idem,
                          Callback<Contact> done) {
  db_->Write<Contact>(
      [c = std::move(c), idem = std::move(idem)](
          SQLite::Database& db) mutable -> absl::StatusOr<Contact> {
        return internal::Idempotent<Contact>(
            db, c.account_id, idem,
            [&db, &c](const std::string& id) {
              return LoadContact(db, c.account_id, id);
            },
            [&]() -> absl::StatusOr<Contact> {
              SortUnique(c.tags);
              RETURN_IF_ERROR(CheckAddressFree(db, c));
              SQLite::Statement st(
                  db,
                  "INSERT INTO contacts(id, account_id, channel, address, "
                  "attributes, created_at, updated_at) VALUES(?,?,?,?,?,?,?)");
              st.bind(1, c.id);
              st.bind(2, c.account_id);
              st.bind(3, std::string(ChannelName(c.channel)));
              st.bind(4, c.address);
              st.bind(5, MapToJson(c.attributes));
              st.bind(6, static_cast<int64_t>(ToMicros(c.created_at)));
              st.bind(7, static_cast<int64_t>(ToMicros(c.updated_at)));
              st.exec();
              WriteTags(db, c.account_id, db.getLastInsertRowid(), c.tags);
              return c;
            },
            [](const Contact& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<Contact> Store::GetContact(const std::string& account_id,
                                          const std::string& id) {
  return db_->Read(
      [&](SQLite::Database& db) { return LoadContact(db, account_id, id); });
}

absl::StatusOr<Page<Contact>> Store::ListContacts(const std::string& account_id,
                                                  const ContactFilter& filter,
                                                  const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) -> absl::StatusOr<Page<Contact>> {
    if (!filter.list_id.empty()) {
      RETURN_IF_ERROR(LoadContactList(db, account_id, filter.list_id).status());
    }
    return internal::ListPage<Contact>(
        db,
        absl::StrCat(
            kContacts,
            " WHERE account_id=?1 AND (?2='' OR channel=?2) AND (?3='' OR seq "
            "IN (SELECT contact_seq FROM contact_tags WHERE account_id=?1 AND "
            "tag=?3)) AND (?4='' OR seq IN (SELECT contact_seq FROM "
            "contact_list_members WHERE list_id=?4))"),
        "seq DESC", 4,
        [&](SQLite::Statement& st) {
          st.bind(1, account_id);
          st.bind(2, filter.channel == Channel::kUnspecified
                         ? std::string()
                         : std::string(ChannelName(filter.channel)));
          st.bind(3, filter.tag);
          st.bind(4, filter.list_id);
        },
        &ReadContact, page);
  });
}

void Store::UpdateContact(const std::string& account_id, const std::string& id,
                          std::function<absl::Status(Contact&)> mutate,
                          Callback<Contact> done) {
  db_->Write<Contact>(
      [account_id, id, mutate = std::move(mutate)](
          SQLite::Database& db) -> absl::StatusOr<Contact> {
        ASSIGN_OR_RETURN(Contact c, LoadContact(db, account_id, id));
        const Contact before = c;
        RETURN_IF_ERROR(mutate(c));
        // What identifies the contact stays.
        c.id = before.id;
        c.account_id = before.account_id;
        c.channel = before.channel;
        c.created_at = before.created_at;
        SortUnique(c.tags);
        RETURN_IF_ERROR(CheckAddressFree(db, c));
        c.updated_at = NowMicros();
        SQLite::Statement st(db,
                             "UPDATE contacts SET address=?, attributes=?, "
                             "updated_at=? WHERE id=? AND account_id=? "
                             "RETURNING seq");
        st.bind(1, c.address);
        st.bind(2, MapToJson(c.attributes));
        st.bind(3, static_cast<int64_t>(ToMicros(c.updated_at)));
        st.bind(4, id);
        st.bind(5, account_id);
        if (!st.executeStep()) return errors::NotFound("contact", id);
        const int64_t seq = st.getColumn(0).getInt64();
        st.reset();
        if (c.tags != before.tags) WriteTags(db, account_id, seq, c.tags);
        return c;
      },
      std::move(done));
}

void Store::DeleteContact(const std::string& account_id, const std::string& id,
                          StatusCallback done) {
  db_->WriteRaw(
      [account_id, id](SQLite::Database& db) -> absl::Status {
        // Tags and memberships go with it (ON DELETE CASCADE).
        return internal::DeleteRow(db, "contacts", "contact", account_id, id);
      },
      std::move(done));
}

// --- Contact lists ---------------------------------------------------------

void Store::CreateContactList(ContactList l, IdempotencyKey idem,
                              Callback<ContactList> done) {
  db_->Write<ContactList>(
      [l = std::move(l), idem = std::move(idem)](
          SQLite::Database& db) -> absl::StatusOr<ContactList> {
        return internal::Idempotent<ContactList>(
            db, l.account_id, idem,
            [&db, &l](const std::string& id) {
              return LoadContactList(db, l.account_id, id);
            },
            [&]() -> absl::StatusOr<ContactList> {
              SQLite::Statement st(db,
                                   "INSERT INTO contact_lists(id, account_id, "
                                   "name, description, created_at, "
                                   "updated_at) VALUES(?,?,?,?,?,?)");
              st.bind(1, l.id);
              st.bind(2, l.account_id);
              st.bind(3, l.name);
              st.bind(4, l.description);
              st.bind(5, static_cast<int64_t>(ToMicros(l.created_at)));
              st.bind(6, static_cast<int64_t>(ToMicros(l.updated_at)));
              st.exec();
              ContactList out = l;
              out.contact_count = 0;
              return out;
            },
            [](const ContactList& x) { return x.id; });
      },
      std::move(done));
}

absl::StatusOr<ContactList> Store::GetContactList(const std::string& account_id,
                                                  const std::string& id) {
  return db_->Read([&](SQLite::Database& db) {
    return LoadContactList(db, account_id, id);
  });
}

absl::StatusOr<Page<ContactList>> Store::ListContactLists(
    const std::string& account_id, const PageRequest& page) {
  return db_->Read([&](SQLite::Database& db) {
    return internal::ListPage<ContactList>(
        db, absl::StrCat(kContactLists, " WHERE account_id=?1"),
        "created_at DESC, id DESC", 1,
        [&](SQLite::Statement& st) { st.bind(1, account_id); },
        &ReadContactList, page);
  });
}

void Store::DeleteContactList(const std::string& account_id,
                              const std::string& id, StatusCallback done) {
  db_->WriteRaw(
      [account_id, id](SQLite::Database& db) -> absl::Status {
        RETURN_IF_ERROR(LoadContactList(db, account_id, id).status());
        RETURN_IF_ERROR(internal::CheckUnusedByLiveCampaign(
            db, account_id, "contact_list_id", id, "contact list"));
        // Memberships go with it (ON DELETE CASCADE).
        return internal::DeleteRow(db, "contact_lists", "contact list",
                                   account_id, id);
      },
      std::move(done));
}

void Store::AddContactsToList(const std::string& account_id,
                              const std::string& list_id,
                              std::vector<std::string> contact_ids,
                              Callback<ListMembershipChange> done) {
  db_->Write<ListMembershipChange>(
      [account_id, list_id,
       contact_ids = std::move(contact_ids)](SQLite::Database& db) {
        return ChangeMembership(db, account_id, list_id, contact_ids,
                                /*add=*/true);
      },
      std::move(done));
}

void Store::RemoveContactsFromList(const std::string& account_id,
                                   const std::string& list_id,
                                   std::vector<std::string> contact_ids,
                                   Callback<ListMembershipChange> done) {
  db_->Write<ListMembershipChange>(
      [account_id, list_id,
       contact_ids = std::move(contact_ids)](SQLite::Database& db) {
        return ChangeMembership(db, account_id, list_id, contact_ids,
                                /*add=*/false);
      },
      std::move(done));
}

// --- Audience ----------------------------------------------------------------

namespace internal {

absl::StatusOr<MaterializeResult> Materialize(SQLite::Database& db,
                                              Campaign& c) {
  const std::string& account_id = c.account_id;
  const std::string& campaign_id = c.id;
  if (IsFinal(c.status)) {
    return errors::IllegalTransition(absl::StrCat(
        "campaign ", campaign_id, " is ", CampaignStatusName(c.status),
        "; its audience can no longer change"));
  }
  // Parameters: ?1 account, ?2 channel, ?3 list id, ?4 tags (JSON),
  // ?5 contact ids (JSON), ?6 campaign id, ?7 now.
  std::vector<std::string> audience;
  if (!c.contact_list_id.empty()) {
    RETURN_IF_ERROR(
        LoadContactList(db, account_id, c.contact_list_id).status());
    audience.push_back(
        "c.seq IN (SELECT contact_seq FROM contact_list_members "
        "WHERE list_id=?3)");
  }
  if (!c.tags.empty()) {
    audience.push_back(
        "c.seq IN (SELECT contact_seq FROM contact_tags WHERE "
        "account_id=?1 AND tag IN (SELECT value FROM json_each(?4)))");
  }
  if (!c.contact_ids.empty()) {
    audience.push_back("c.id IN (SELECT value FROM json_each(?5))");
  }
  if (audience.empty()) {
    return errors::Validation("audience",
                              absl::StrCat("campaign ", campaign_id,
                                           " has no contact audience (contact "
                                           "list, tags or contact ids)"));
  }
  if (c.import_floor.has_value()) {
    return errors::Validation(
        "audience",
        absl::StrCat("an import into campaign ", campaign_id, " is running"));
  }
  const std::string ctes = absl::StrCat(
      "WITH matched AS (SELECT c.seq, c.id, c.address, c.attributes "
      "FROM contacts c WHERE c.account_id=?1 AND c.channel=?2 AND (",
      absl::StrJoin(audience, " OR "),
      ")), eligible AS (SELECT * FROM matched m WHERE NOT EXISTS "
      "(SELECT 1 FROM suppressions s WHERE s.account_id=?1 AND "
      "s.address=m.address AND s.channel IN (?2, ''))) ");
  // Only the parameters the audience uses: binding past the highest
  // one in the statement is an error.
  auto bind = [&](SQLite::Statement& st) {
    st.bind(1, account_id);
    st.bind(2, std::string(ChannelName(c.channel)));
    if (!c.contact_list_id.empty()) st.bind(3, c.contact_list_id);
    if (!c.tags.empty()) st.bind(4, ListToJson(c.tags));
    if (!c.contact_ids.empty()) st.bind(5, ListToJson(c.contact_ids));
  };
  MaterializeResult result;
  {
    SQLite::Statement count(
        db, absl::StrCat(ctes,
                         "SELECT (SELECT COUNT(*) FROM matched), "
                         "(SELECT COUNT(*) FROM eligible)"));
    bind(count);
    count.executeStep();
    result.matched = count.getColumn(0).getInt64();
    result.suppressed = result.matched - count.getColumn(1).getInt64();
  }
  const int64_t now = ToMicros(NowMicros());
  {
    // A contact's recipient_variables (?9) override its attributes of the
    // same name.
    // Rows inserted below get seqs above the last one so far.
    const int64_t last_seq = internal::LastRecipientSeq(db);
    const bool overrides = !c.recipient_variables.empty();
    const char* variables =
        overrides ? "COALESCE(json_patch(e.attributes, json_extract(?9, "
                    "'$.\"' || e.id || '\"')), e.attributes)"
                  : "e.attributes";
    SQLite::Statement insert(
        db, absl::StrCat(
                ctes,
                "INSERT OR IGNORE INTO recipients(campaign_seq, contact_id, "
                "address, variables, status, created_at, updated_at) "
                "SELECT ?6, e.id, e.address, ",
                variables,
                ", ?8, ?7, ?7 "
                "FROM eligible e WHERE NOT EXISTS (SELECT 1 FROM "
                "recipient_addresses a WHERE a.campaign_seq=?6 AND "
                "a.address=e.address) ORDER BY e.seq"));
    bind(insert);
    insert.bind(6, static_cast<int64_t>(c.seq));
    insert.bind(7, static_cast<int64_t>(now));
    insert.bind(8, std::string(RecipientStatusName(RecipientStatus::kQueued)));
    if (overrides) insert.bind(9, NestedMapToJson(c.recipient_variables));
    result.inserted = insert.exec();
    // Contacts are unique by address on a channel, so the new rows' addresses
    // are distinct: add them to the campaign's address set, in its order.
    SQLite::Statement addresses(
        db,
        "INSERT INTO recipient_addresses(campaign_seq, address, seq) SELECT "
        "campaign_seq, address, seq FROM recipients INDEXED BY "
        "recipients_by_status WHERE campaign_seq=?2 AND status='queued' AND "
        "seq>?1 ORDER BY address");
    addresses.bind(1, static_cast<int64_t>(last_seq));
    addresses.bind(2, static_cast<int64_t>(c.seq));
    addresses.exec();
  }
  c.stats.total += result.inserted;
  c.stats.queued += result.inserted;
  if (result.inserted > 0) {
    SQLite::Statement counters(
        db,
        "UPDATE campaigns SET total=total+?1, queued=queued+?1, "
        "updated_at=?2 WHERE id=?3 AND account_id=?4");
    counters.bind(1, static_cast<int64_t>(result.inserted));
    counters.bind(2, static_cast<int64_t>(now));
    counters.bind(3, campaign_id);
    counters.bind(4, account_id);
    counters.exec();
  }
  return result;
}

}  // namespace internal

void Store::MaterializeAudience(const std::string& account_id,
                                const std::string& campaign_id,
                                Callback<MaterializeResult> done) {
  db_->Write<MaterializeResult>(
      [account_id,
       campaign_id](SQLite::Database& db) -> absl::StatusOr<MaterializeResult> {
        ASSIGN_OR_RETURN(Campaign c,
                         internal::LoadCampaign(db, account_id, campaign_id));
        return internal::Materialize(db, c);
      },
      std::move(done));
}

}  // namespace campaigns::storage
