// ImportContacts against a real server: CSV and JSON rows, create versus
// merge into existing contacts, tags and list membership, row errors,
// settings errors naming the field, idempotency, cancellation, and imports
// larger than one apply chunk.
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/integration/fixture.h"

namespace campaigns::testing {
namespace {

using ContactsRequest = v1::ImportContactsRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class ContactImportTest : public ServerTest {
 protected:
  static ContactsRequest First(v1::Channel channel = v1::sms,
                               const std::string& list_id = "",
                               std::vector<std::string> tags = {},
                               const std::string& request_id = "") {
    ContactsRequest r;
    r.set_format(v1::ImportRecipientsRequest::csv);
    r.set_channel(channel);
    r.set_default_region("US");
    r.set_list_id(list_id);
    r.set_request_id(request_id);
    for (const std::string& t : tags) r.add_tags(t);
    return r;
  }

  static ContactsRequest Chunk(const std::string& bytes) {
    ContactsRequest r;
    r.set_csv_chunk(bytes);
    return r;
  }

  grpc::Status Import(const std::vector<ContactsRequest>& messages,
                      v1::ImportContactsResponse* out,
                      const std::string& key = kAdminKey) {
    auto ctx = Ctx(key);
    auto writer = contacts_->ImportContacts(ctx.get(), out);
    for (const ContactsRequest& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::ContactList MustCreateList(const std::string& name) {
    v1::CreateContactListRequest req;
    req.set_name(name);
    v1::ContactList l;
    grpc::Status s =
        contacts_->CreateContactList(Ctx(kAdminKey).get(), req, &l);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return l;
  }

  // Every contact of the account matching `req`, in listing order.
  std::vector<v1::Contact> ListAll(v1::ListContactsRequest req = {}) {
    std::vector<v1::Contact> all;
    req.set_limit(100);
    for (;;) {
      v1::ListContactsResponse page;
      grpc::Status s =
          contacts_->ListContacts(Ctx(kAdminKey).get(), req, &page);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const v1::Contact& c : page.items()) all.push_back(c);
      if (!page.has_more()) break;
      req.set_page_token(page.next_page_token());
    }
    return all;
  }

  int64_t Total(v1::ListContactsRequest req = {}) {
    req.set_limit(1);
    v1::ListContactsResponse page;
    grpc::Status s = contacts_->ListContacts(Ctx(kAdminKey).get(), req, &page);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return page.total();
  }

  v1::Contact Find(const std::string& address) {
    for (const v1::Contact& c : ListAll()) {
      if (c.address() == address) return c;
    }
    ADD_FAILURE() << "no contact " << address;
    return {};
  }
};

// `n` distinct valid US numbers with a `name` column.
std::string ManyContactRows(int n) {
  std::string text = "phone,name\n";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&text, "+1202", 3000000 + i, ",n", i, "\n");
  }
  return text;
}

TEST_F(ContactImportTest, CreatesNewContactsAndMergesIntoExistingOnes) {
  v1::CreateContactRequest create;
  create.set_channel(v1::sms);
  create.set_address("+12025550101");
  create.add_tags("old");
  (*create.mutable_attributes())["first_name"] = "Ann";
  (*create.mutable_attributes())["city"] = "Rome";
  v1::Contact existing;
  ASSERT_TRUE(
      contacts_->CreateContact(Ctx(kAdminKey).get(), create, &existing).ok());
  v1::ContactList list = MustCreateList("imported");

  // Row 1 updates Ann (an empty cell keeps her first_name), row 2 is new,
  // row 3 repeats row 2's number in another form, row 4 is no number.
  const std::string csv =
      "phone,first_name,city\r\n"
      "(202) 555-0101,,Paris\r\n"
      "+1 202 555 0102,\"Bob, Jr\",\r\n"
      "2025550102,Again,Oslo\r\n"
      "not a number,X,Y\r\n";
  v1::ImportContactsResponse out;
  grpc::Status s = Import(
      {First(v1::sms, list.id(), {"vip", "spring", "vip"}), Chunk(csv)}, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 4);
  EXPECT_EQ(out.imported(), 1);
  EXPECT_EQ(out.updated(), 1);
  EXPECT_EQ(out.duplicates(), 1);
  EXPECT_EQ(out.invalid(), 1);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 3);
  EXPECT_THAT(out.errors(0).reason(), HasSubstr("duplicate"));
  EXPECT_EQ(out.errors(1).row(), 4);

  std::vector<v1::Contact> all = ListAll();
  ASSERT_EQ(all.size(), 2u);
  v1::Contact ann = Find("+12025550101");
  EXPECT_EQ(ann.id(), existing.id());
  EXPECT_EQ(ann.attributes().at("first_name"), "Ann");
  EXPECT_EQ(ann.attributes().at("city"), "Paris");
  EXPECT_THAT(ann.tags(), UnorderedElementsAre("old", "vip", "spring"));
  v1::Contact bob = Find("+12025550102");
  EXPECT_EQ(bob.id().substr(0, 3), "ct_");
  EXPECT_EQ(bob.channel(), v1::sms);
  EXPECT_EQ(bob.attributes().at("first_name"), "Bob, Jr");
  EXPECT_EQ(bob.attributes().count("city"), 0u);
  EXPECT_THAT(bob.tags(), UnorderedElementsAre("vip", "spring"));

  v1::ListContactsRequest members;
  members.set_list_id(list.id());
  EXPECT_EQ(Total(members), 2);
  v1::ListContactsRequest tagged;
  tagged.set_tag("spring");
  EXPECT_EQ(Total(tagged), 2);

  // Importing the same rows again changes nothing and counts updates.
  ASSERT_TRUE(Import({First(v1::sms, list.id()), Chunk(csv)}, &out).ok());
  EXPECT_EQ(out.imported(), 0);
  EXPECT_EQ(out.updated(), 2);
  EXPECT_EQ(ListAll().size(), 2u);
  EXPECT_EQ(Find("+12025550101").attributes().at("city"), "Paris");
}

TEST_F(ContactImportTest, JsonRowsOnEmailRefuseContactIds) {
  ContactsRequest first = First(v1::email);
  first.set_format(v1::ImportRecipientsRequest::json_rows);
  ContactsRequest rows;
  v1::RecipientRow* r = rows.add_rows();
  r->set_address("Ann@Example.COM");
  (*r->mutable_variables())["plan"] = "gold";
  r = rows.add_rows();
  r->set_address("bob@example.com");
  r->set_contact_id("ct_123");
  r = rows.add_rows();
  r->set_address("not-an-email");
  v1::ImportContactsResponse out;
  grpc::Status s = Import({first, rows}, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 3);
  EXPECT_EQ(out.imported(), 1);
  EXPECT_EQ(out.invalid(), 2);
  ASSERT_EQ(out.errors_size(), 2);
  EXPECT_EQ(out.errors(0).row(), 2);
  EXPECT_THAT(out.errors(0).reason(), HasSubstr("contact_id"));
  EXPECT_EQ(out.errors(1).row(), 3);

  std::vector<v1::Contact> all = ListAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].address(), "ann@example.com");
  EXPECT_EQ(all[0].channel(), v1::email);
  EXPECT_EQ(all[0].attributes().at("plan"), "gold");
}

TEST_F(ContactImportTest, BadSettingsNameTheFieldAndStoreNothing) {
  v1::ImportContactsResponse out;
  ErrorDetails d = Details(Import(
      {First(v1::channel_unspecified), Chunk("phone\n2025550101\n")}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"channel"});

  d = Details(
      Import({First(v1::sms, "cl_missing"), Chunk("phone\n1\n")}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(d.message, HasSubstr("cl_missing"));

  d = Details(Import({First(v1::sms, "", {std::string(65, 't')}),
                      Chunk("phone\n2025550101\n")},
                     &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields.size(), 1u);
  EXPECT_THAT(d.fields[0], HasSubstr("tags"));

  ContactsRequest later = Chunk("2025550102\n");
  later.add_tags("late");
  d = Details(Import({First(), Chunk("phone\n2025550101\n"), later}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"tags"});

  d = Details(Import({First(), Chunk("name\nAnn\n")}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);

  d = Details(Import({}, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(ListAll().empty());
}

TEST_F(ContactImportTest,
       RequestIdRepeatsTheFirstResultAndRefusesOtherContent) {
  v1::ImportContactsResponse first;
  ASSERT_TRUE(
      Import({First(v1::sms, "", {"a"}, "contacts-1"),
              Chunk("phone,n\n2025550101,1\n"), Chunk("2025550102,2\n")},
             &first)
          .ok());
  EXPECT_EQ(first.imported(), 2);

  v1::ImportContactsResponse repeat;
  ASSERT_TRUE(Import({First(v1::sms, "", {"a"}, "contacts-1"),
                      Chunk("phone,n\n2025550101,1\n2025550102,2\n")},
                     &repeat)
                  .ok());
  EXPECT_EQ(repeat.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(repeat.updated(), 0);

  v1::ImportContactsResponse out;
  ErrorDetails d = Details(Import({First(v1::sms, "", {"b"}, "contacts-1"),
                                   Chunk("phone,n\n2025550101,1\n")},
                                  &out));
  EXPECT_EQ(d.code, grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(d.reason, "IDEMPOTENCY_CONFLICT");
  v1::ListContactsRequest tagged;
  tagged.set_tag("b");
  EXPECT_EQ(Total(tagged), 0);
  EXPECT_EQ(ListAll().size(), 2u);
}

TEST_F(ContactImportTest, FatalErrorOrCancelledStreamChangesNothing) {
  const std::string text = ManyContactRows(20000);
  std::vector<ContactsRequest> messages = {First(v1::sms, "", {"x"})};
  for (size_t i = 0; i < text.size(); i += 8192) {
    messages.push_back(Chunk(text.substr(i, 8192)));
  }
  messages.push_back(Chunk("\"unterminated"));
  v1::ImportContactsResponse out;
  ErrorDetails d = Details(Import(messages, &out));
  EXPECT_EQ(d.code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(d.fields, std::vector<std::string>{"csv_chunk"});
  EXPECT_EQ(Total(), 0);

  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kAdminKey));
  auto writer = contacts_->ImportContacts(&ctx, &out);
  ASSERT_TRUE(writer->Write(First()));
  for (size_t i = 0; i < text.size(); i += 8192) {
    ASSERT_TRUE(writer->Write(Chunk(text.substr(i, 8192))));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ctx.TryCancel();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(Total(), 0);
}

TEST_F(ContactImportTest, ImportLargerThanOneApplyChunk) {
  v1::ContactList list = MustCreateList("big");
  const std::string text = ManyContactRows(10001);
  std::vector<ContactsRequest> messages = {First(v1::sms, list.id(), {"bulk"})};
  for (size_t i = 0; i < text.size(); i += 4096) {
    messages.push_back(Chunk(text.substr(i, 4096)));
  }
  v1::ImportContactsResponse out;
  grpc::Status s = Import(messages, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.received(), 10001);
  EXPECT_EQ(out.imported(), 10001);
  EXPECT_EQ(Total(), 10001);
  v1::ListContactsRequest members;
  members.set_list_id(list.id());
  EXPECT_EQ(Total(members), 10001);
  v1::ListContactsRequest tagged;
  tagged.set_tag("bulk");
  EXPECT_EQ(Total(tagged), 10001);
  EXPECT_EQ(Find("+12023010000").attributes().at("name"), "n10000");
}

}  // namespace
}  // namespace campaigns::testing
