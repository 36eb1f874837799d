// campaignctl's `contacts` and `lists` commands against an in-process fake
// ContactService: requests built from flags, update masks, output.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "campaigns/v1/contact.grpc.pb.h"
#include "client/campaignctl.h"
#include "client/command.h"
#include "tests/client/cli_test_util.h"

namespace campaigns::client {
namespace {

// Answers from fixed data and keeps the last request. Thread-safe.
class FakeContacts final : public v1::ContactService::Service {
 public:
  grpc::Status CreateContact(grpc::ServerContext*,
                             const v1::CreateContactRequest* request,
                             v1::Contact* response) override {
    Record(*request);
    response->set_id("ct_1");
    response->set_address(request->address());
    response->set_channel(request->channel());
    *response->mutable_tags() = request->tags();
    return grpc::Status::OK;
  }
  grpc::Status ListContacts(grpc::ServerContext*,
                            const v1::ListContactsRequest* request,
                            v1::ListContactsResponse* response) override {
    Record(*request);
    v1::Contact* c = response->add_items();
    c->set_id("ct_1");
    c->set_address("+12025550143");
    c->set_channel(v1::sms);
    c->add_tags("eu");
    c->add_tags("vip");
    response->set_total(1);
    response->set_page(1);
    response->set_limit(request->limit());
    return grpc::Status::OK;
  }
  grpc::Status UpdateContact(grpc::ServerContext*,
                             const v1::UpdateContactRequest* request,
                             v1::Contact* response) override {
    Record(*request);
    response->set_id(request->id());
    return grpc::Status::OK;
  }
  grpc::Status DeleteContactList(grpc::ServerContext*,
                                 const v1::DeleteContactListRequest* request,
                                 google::protobuf::Empty*) override {
    Record(*request);
    return grpc::Status::OK;
  }
  grpc::Status AddContactsToList(
      grpc::ServerContext*, const v1::ContactListMembershipRequest* request,
      v1::ContactListMembershipResponse* response) override {
    Record(*request);
    response->set_changed(request->contact_ids_size());
    response->mutable_list()->set_id(request->list_id());
    response->mutable_list()->set_contact_count(7);
    return grpc::Status::OK;
  }

  grpc::Status ImportContacts(
      grpc::ServerContext*,
      grpc::ServerReader<v1::ImportContactsRequest>* reader,
      v1::ImportContactsResponse* response) override {
    std::vector<v1::ImportContactsRequest> messages;
    v1::ImportContactsRequest m;
    int64_t rows = 0;
    while (reader->Read(&m)) {
      rows += m.rows_size();
      messages.push_back(m);
    }
    std::lock_guard<std::mutex> lock(mu_);
    imports_ = std::move(messages);
    response->set_received(rows);
    response->set_imported(rows - 1);
    response->set_updated(1);
    return grpc::Status::OK;
  }

  std::vector<v1::ImportContactsRequest> imports() {
    std::lock_guard<std::mutex> lock(mu_);
    return imports_;
  }

  template <typename T>
  T last() {
    std::lock_guard<std::mutex> lock(mu_);
    T out;
    if (last_ != nullptr) out.CopyFrom(*last_);
    return out;
  }

 private:
  void Record(const google::protobuf::Message& request) {
    std::lock_guard<std::mutex> lock(mu_);
    last_.reset(request.New());
    last_->CopyFrom(request);
  }

  std::mutex mu_;
  std::unique_ptr<google::protobuf::Message> last_;
  std::vector<v1::ImportContactsRequest> imports_;
};

using Result = test_util::CliResult;

// Starts the fake on 127.0.0.1:0. Not thread-safe (one test at a time).
class ContactCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<test_util::FakeServer>(
        std::vector<grpc::Service*>{&contacts_});
  }

  Result Run(std::vector<std::string> args) {
    return server_->Run(std::move(args));
  }

  FakeContacts contacts_;
  std::unique_ptr<test_util::FakeServer> server_;
};

TEST_F(ContactCommandsTest, CreateMapsEveryFlag) {
  Result r =
      Run({"contacts", "create", "(202) 555-0143", "--channel", "sms", "--attr",
           "first_name=Ann", "--attr", "city=Paris", "--tag", "vip", "--tag",
           "eu", "--region", "US", "--request-id", "r1"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::CreateContactRequest sent = contacts_.last<v1::CreateContactRequest>();
  EXPECT_EQ(sent.address(), "(202) 555-0143");
  EXPECT_EQ(sent.channel(), v1::sms);
  EXPECT_EQ(sent.attributes().at("first_name"), "Ann");
  EXPECT_EQ(sent.attributes().at("city"), "Paris");
  ASSERT_EQ(sent.tags_size(), 2);
  EXPECT_EQ(sent.tags(0), "vip");
  EXPECT_EQ(sent.tags(1), "eu");
  EXPECT_EQ(sent.default_region(), "US");
  EXPECT_EQ(sent.request_id(), "r1");
  EXPECT_NE(r.out.find("id:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ct_1"), std::string::npos) << r.out;
}

TEST_F(ContactCommandsTest, CreateNeedsAChannel) {
  Result r = Run({"contacts", "create", "+12025550143"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("--channel"), std::string::npos) << r.err;
}

TEST_F(ContactCommandsTest, ListFiltersAndPrintsTags) {
  Result r = Run({"contacts", "list", "--tag", "vip", "--list", "cl_1",
                  "--channel", "sms", "--limit", "5"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::ListContactsRequest sent = contacts_.last<v1::ListContactsRequest>();
  EXPECT_EQ(sent.tag(), "vip");
  EXPECT_EQ(sent.list_id(), "cl_1");
  EXPECT_EQ(sent.channel(), v1::sms);
  EXPECT_EQ(sent.limit(), 5);
  EXPECT_NE(r.out.find("ct_1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eu,vip"), std::string::npos) << r.out;
}

TEST_F(ContactCommandsTest, UpdateMaskHasExactlyTheGivenFlags) {
  Result r = Run({"contacts", "update", "ct_1", "--tag", "a", "--attr", "k=v"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::UpdateContactRequest sent = contacts_.last<v1::UpdateContactRequest>();
  EXPECT_EQ(sent.id(), "ct_1");
  std::vector<std::string> paths(sent.update_mask().paths().begin(),
                                 sent.update_mask().paths().end());
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{"attributes", "tags"}));
}

TEST_F(ContactCommandsTest, ListsAddTakesSeveralContactIds) {
  Result r = Run({"lists", "add", "cl_1", "ct_1", "ct_2", "ct_3"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  v1::ContactListMembershipRequest sent =
      contacts_.last<v1::ContactListMembershipRequest>();
  EXPECT_EQ(sent.list_id(), "cl_1");
  ASSERT_EQ(sent.contact_ids_size(), 3);
  EXPECT_EQ(sent.contact_ids(2), "ct_3");
  EXPECT_NE(r.out.find("changed: 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("contact_count: 7"), std::string::npos) << r.out;
}

TEST_F(ContactCommandsTest, ListsDeletePrintsWhatWasDeleted) {
  Result r = Run({"lists", "delete", "cl_9"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(contacts_.last<v1::DeleteContactListRequest>().id(), "cl_9");
  EXPECT_NE(r.out.find("cl_9"), std::string::npos) << r.out;
}

TEST_F(ContactCommandsTest, ImportStreamsJsonRowsWithChannelListAndTags) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("campaignctl-contacts-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << R"({"contacts": [
      {"phone": "+12025550143", "first_name": "Ann"},
      {"phone": "+12025550144", "plan": 3}]})";
  Result r = Run({"contacts", "import", path.string(), "--channel", "sms",
                  "--list", "cl_1", "--tag", "spring", "--tag", "vip",
                  "--region", "US", "--no-progress"});
  std::filesystem::remove(path);
  ASSERT_EQ(r.code, kExitOk) << r.err;
  std::vector<v1::ImportContactsRequest> m = contacts_.imports();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].channel(), v1::sms);
  EXPECT_EQ(m[0].format(), v1::ImportRecipientsRequest::json_rows);
  EXPECT_EQ(m[0].list_id(), "cl_1");
  EXPECT_EQ(m[0].default_region(), "US");
  ASSERT_EQ(m[0].tags_size(), 2);
  EXPECT_EQ(m[0].tags(1), "vip");
  ASSERT_EQ(m[1].rows_size(), 2);
  EXPECT_EQ(m[1].rows(0).address(), "+12025550143");
  EXPECT_EQ(m[1].rows(0).variables().at("first_name"), "Ann");
  EXPECT_EQ(m[1].rows(1).variables().at("plan"), "3");
  EXPECT_NE(r.out.find("updated"), std::string::npos) << r.out;

  Result bad = Run({"contacts", "import", "-", "--channel", "pigeon"});
  EXPECT_EQ(bad.code, kExitUsage);
  EXPECT_NE(bad.err.find("--channel"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace campaigns::client
