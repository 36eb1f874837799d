// libFuzzer target for the request decoding of every campaigns.v1 RPC: the
// input's bytes are sent as the request of one RPC to a real campaignd
// (CampaignServer on 127.0.0.1:0 over a fresh SQLite database in a
// temporary directory), so they go through what a client's bytes go
// through: gRPC, the raw method's ParseRequest, authentication, the
// handler (server/api/) and the store behind it.
//
// Input:
//   byte 0   the RPC: an index into every method of the seven services
//   byte 1   bits 0-1: the caller (none, the admin, an account, a bad key);
//            bit 2: fill the request's empty id fields (campaign_id,
//            sender_id, …) with ids of what the fixture made (an account
//            with a sender, an approved template, a draft campaign, a
//            contact and a contact list), so handlers get past NOT_FOUND;
//            bits 3-5: which of those an `id` field names
//   the rest the request; for a client stream, messages each prefixed
//            with their length (2 bytes, little-endian; the last one takes
//            what is left)
//
// Checked: a unary call or stream ends within 10 s (a handler that never
// replies is a bug); no call fails INTERNAL or UNKNOWN (a thrown exception,
// SQL the storage layer did not map); every OK answer parses as its
// response type (e.g. a string field is valid UTF-8). ASan/UBSan catch
// memory and UB errors in the server, which runs in this process.
//
// The server's threads are made once; every kInputsPerServer inputs it is
// shut down and started again on a new database, so state stays bounded.
//
//   tools/fuzz/build.sh build-fuzz
//   build-fuzz/tools/fuzz/rpc_fuzzer -max_total_time=600 tests/fuzz/rpc_corpus
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <grpcpp/support/sync_stream.h>
#include <stdlib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "campaigns/v1/account.grpc.pb.h"
#include "campaigns/v1/campaign.grpc.pb.h"
#include "campaigns/v1/contact.grpc.pb.h"
#include "campaigns/v1/delivery.grpc.pb.h"
#include "campaigns/v1/sender.grpc.pb.h"
#include "campaigns/v1/suppression.grpc.pb.h"
#include "campaigns/v1/template.grpc.pb.h"
#include "server/server.h"

namespace campaigns {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;

constexpr char kAdminKey[] = "ck_fuzz_admin_key_0123456789abcdef";
constexpr int kInputsPerServer = 5000;
constexpr auto kCallTimeout = std::chrono::seconds(10);

struct RpcInfo {
  std::string path;  // "/campaigns.v1.CampaignService/GetCampaign"
  const Descriptor* request = nullptr;
  const Descriptor* response = nullptr;
  bool client_streaming = false;
  bool server_streaming = false;
};

std::vector<RpcInfo> AllRpcs() {
  const std::vector<std::string> services = {
      v1::AccountService::service_full_name(),
      v1::CampaignService::service_full_name(),
      v1::ContactService::service_full_name(),
      v1::DeliveryService::service_full_name(),
      v1::SenderService::service_full_name(),
      v1::SuppressionService::service_full_name(),
      v1::TemplateService::service_full_name(),
  };
  std::vector<RpcInfo> out;
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (s == nullptr) std::abort();
    for (int i = 0; i < s->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = s->method(i);
      out.push_back({"/" + s->full_name() + "/" + m->name(), m->input_type(),
                     m->output_type(), m->client_streaming(),
                     m->server_streaming()});
    }
  }
  return out;
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& key) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
  ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return ctx;
}

[[noreturn]] void Fail(const std::string& rpc, const std::string& why) {
  std::fprintf(stderr, "rpc_fuzzer: %s: %s\n", rpc.c_str(), why.c_str());
  std::abort();
}

// A server on a fresh database and what the fixture made in it.
class Fixture {
 public:
  Fixture() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "campaignd-fuzz-XXXXXX")
            .string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.db_path = dir_ + "/campaignd.db";
    options.cq_threads = 1;
    options.skip_check = true;
    options.bootstrap_key = kAdminKey;
    options.key_limit.rate = 0;
    options.http_listen = "";
    options.metrics = false;
    auto server = CampaignServer::Start(options);
    if (!server.ok()) {
      std::fprintf(stderr, "rpc_fuzzer: %s\n",
                   server.status().ToString().c_str());
      std::abort();
    }
    server_ = *std::move(server);
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
    MakeObjects();
  }
  ~Fixture() {
    channel_.reset();
    server_->Shutdown();
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  grpc::Channel* channel() const { return channel_.get(); }
  const std::string& user_key() const { return user_key_; }
  // The ids the fixture made, by the field names that name them.
  const std::map<std::string, std::string>& ids() const { return ids_; }
  // What an `id` field may name, picked by `which`.
  const std::string& AnyId(int which) const {
    static const char* const kKinds[] = {
        "campaign_id", "sender_id",  "template_id", "contact_id",
        "list_id",     "account_id", "key_id",      "campaign_id"};
    return ids_.at(kKinds[which % 8]);
  }

 private:
  void MakeObjects() {
    auto accounts = v1::AccountService::NewStub(channel_);
    v1::CreateAccountRequest account_req;
    account_req.set_name("fuzz");
    v1::Account account;
    Check(accounts->CreateAccount(Context(kAdminKey).get(), account_req,
                                  &account));
    user_key_ = account.api_key().secret();
    ids_["account_id"] = account.id();
    ids_["key_id"] = account.api_key().id();

    auto senders = v1::SenderService::NewStub(channel_);
    v1::RegisterSenderRequest sender_req;
    sender_req.set_sender_id("+15550001");
    sender_req.set_channel(v1::sms);
    sender_req.set_tier(v1::Sender::tier_10k);
    v1::Sender sender;
    Check(
        senders->RegisterSender(Context(user_key_).get(), sender_req, &sender));
    ids_["sender_id"] = sender.sender_id();

    auto templates = v1::TemplateService::NewStub(channel_);
    v1::CreateTemplateRequest template_req;
    template_req.set_name("welcome");
    template_req.set_language("en_US");
    template_req.set_channel(v1::sms);
    template_req.set_body("Hello {{1}}, your code is {{code}}");
    v1::Template tmpl;
    Check(templates->CreateTemplate(Context(user_key_).get(), template_req,
                                    &tmpl));
    v1::SetTemplateStatusRequest approve;
    approve.set_id(tmpl.id());
    approve.set_status(v1::Template::approved);
    Check(
        templates->SetTemplateStatus(Context(kAdminKey).get(), approve, &tmpl));
    ids_["template_id"] = tmpl.id();

    auto campaigns = v1::CampaignService::NewStub(channel_);
    v1::CreateCampaignRequest campaign_req;
    campaign_req.set_name("Spring Promotion");
    campaign_req.set_channel(v1::sms);
    campaign_req.set_sender_id(sender.sender_id());
    campaign_req.set_body("Hi {{name}}, use {{code}}");
    v1::Campaign campaign;
    Check(campaigns->CreateCampaign(Context(user_key_).get(), campaign_req,
                                    &campaign));
    ids_["campaign_id"] = campaign.id();

    auto contacts = v1::ContactService::NewStub(channel_);
    v1::CreateContactRequest contact_req;
    contact_req.set_address("+14155550100");
    contact_req.set_channel(v1::sms);
    (*contact_req.mutable_attributes())["name"] = "Ann";
    v1::Contact contact;
    Check(contacts->CreateContact(Context(user_key_).get(), contact_req,
                                  &contact));
    ids_["contact_id"] = contact.id();
    v1::CreateContactListRequest list_req;
    list_req.set_name("vip");
    v1::ContactList list;
    Check(
        contacts->CreateContactList(Context(user_key_).get(), list_req, &list));
    ids_["list_id"] = list.id();
    ids_["contact_list_id"] = list.id();
  }

  static void Check(const grpc::Status& s) {
    if (!s.ok()) Fail("fixture", s.error_message());
  }

  std::string dir_;
  std::unique_ptr<CampaignServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string user_key_;
  std::map<std::string, std::string> ids_;
};

// The fuzzer's state: the RPCs and the current fixture.
struct State {
  std::vector<RpcInfo> rpcs = AllRpcs();
  std::unique_ptr<Fixture> fixture;
  int inputs = 0;
};

State* TheState() {
  static State* const state = [] {
    // Quiet: protobuf logs each string field that is not UTF-8.
    google::protobuf::SetLogHandler(nullptr);
    return new State();
  }();
  return state;
}

// `bytes` with the empty id fields of the request filled in, when it
// parses; else `bytes` unchanged.
std::string FillIds(const Fixture& fixture, const Descriptor* type, int which,
                    const std::string& bytes) {
  std::unique_ptr<Message> m(
      MessageFactory::generated_factory()->GetPrototype(type)->New());
  if (!m->ParseFromString(bytes)) return bytes;
  const google::protobuf::Reflection* r = m->GetReflection();
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    if (f->type() != FieldDescriptor::TYPE_STRING || f->is_repeated() ||
        !r->GetString(*m, f).empty()) {
      continue;
    }
    if (f->name() == "id") {
      r->SetString(m.get(), f, fixture.AnyId(which));
    } else if (auto it = fixture.ids().find(f->name());
               it != fixture.ids().end()) {
      r->SetString(m.get(), f, it->second);
    }
  }
  return m->SerializeAsString();
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

void CheckStatus(const RpcInfo& rpc, const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      Fail(rpc.path, "no answer within 10 s");
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
      Fail(rpc.path, "failed " + std::to_string(s.error_code()) + ": " +
                         s.error_message());
    default:
      return;
  }
}

void CheckResponse(const RpcInfo& rpc, grpc::ByteBuffer* response) {
  std::vector<grpc::Slice> slices;
  if (!response->Dump(&slices).ok()) Fail(rpc.path, "unreadable answer");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::unique_ptr<Message> m(
      MessageFactory::generated_factory()->GetPrototype(rpc.response)->New());
  if (!m->ParseFromString(bytes)) {
    Fail(rpc.path, "the answer does not parse as " +
                       std::string(rpc.response->full_name()));
  }
}

}  // namespace
}  // namespace campaigns

// OpenSSL's global state (gRPC's and libcurl's) is allocated in libcrypto,
// built without frame pointers: LSan, which libFuzzer runs between inputs
// while the server's threads hold that state, reports it as leaked with no
// frame of ours.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libcrypto.so\n";
}

// The replay main (gcc builds) stops the server here, before main returns:
// by the exit handlers, spdlog's sinks may be gone already.
extern "C" void CampaigndFuzzerCleanup() {
  campaigns::TheState()->fixture.reset();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using campaigns::RpcInfo;
  if (size < 2) return 0;
  campaigns::State* state = campaigns::TheState();
  if (state->fixture == nullptr ||
      state->inputs == campaigns::kInputsPerServer) {
    state->fixture.reset();
    state->fixture = std::make_unique<campaigns::Fixture>();
    state->inputs = 0;
    // Stop the server at exit, before the statics it uses (spdlog's
    // registry, made when the first server started) are destroyed.
    static const bool stop_at_exit = [] {
      std::atexit([] { campaigns::TheState()->fixture.reset(); });
      return true;
    }();
    (void)stop_at_exit;
  }
  ++state->inputs;
  const campaigns::Fixture& fixture = *state->fixture;
  const RpcInfo& rpc = state->rpcs[data[0] % state->rpcs.size()];
  const int caller = data[1] & 3;
  const bool fill = (data[1] & 4) != 0;
  const int which = (data[1] >> 3) & 7;
  const std::string key = caller == 1   ? campaigns::kAdminKey
                          : caller == 2 ? fixture.user_key()
                          : caller == 3 ? "ck_not_a_key"
                                        : "";
  const std::string rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  auto prepare = [&](const std::string& bytes) {
    return fill ? campaigns::FillIds(fixture, rpc.request, which, bytes)
                : bytes;
  };
  auto ctx = campaigns::Context(key);
  grpc::ByteBuffer response;
  if (rpc.client_streaming) {
    grpc::internal::RpcMethod method(
        rpc.path.c_str(), grpc::internal::RpcMethod::CLIENT_STREAMING);
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
        grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
            fixture.channel(), method, ctx.get(), &response));
    size_t at = 0;
    do {
      size_t len = rest.size() - at;
      if (len >= 2) {
        const size_t want = static_cast<uint8_t>(rest[at]) |
                            static_cast<uint8_t>(rest[at + 1]) << 8;
        at += 2;
        len = std::min(want, rest.size() - at);
      } else {
        at = rest.size();
        len = 0;
      }
      if (!writer->Write(campaigns::Buffer(prepare(rest.substr(at, len))))) {
        break;
      }
      at += len;
    } while (at < rest.size());
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    campaigns::CheckStatus(rpc, s);
    if (s.ok()) campaigns::CheckResponse(rpc, &response);
  } else if (rpc.server_streaming) {
    grpc::internal::RpcMethod method(
        rpc.path.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING);
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
            fixture.channel(), method, ctx.get(),
            campaigns::Buffer(prepare(rest))));
    bool cancelled = false;
    if (reader->Read(&response)) {
      campaigns::CheckResponse(rpc, &response);
      ctx->TryCancel();  // one snapshot is enough
      cancelled = true;
    }
    const grpc::Status s = reader->Finish();
    if (!cancelled) campaigns::CheckStatus(rpc, s);
  } else {
    grpc::internal::RpcMethod method(rpc.path.c_str(),
                                     grpc::internal::RpcMethod::NORMAL_RPC);
    const grpc::Status s = grpc::internal::BlockingUnaryCall(
        fixture.channel(), method, ctx.get(), campaigns::Buffer(prepare(rest)),
        &response);
    campaigns::CheckStatus(rpc, s);
    if (s.ok()) campaigns::CheckResponse(rpc, &response);
  }
  return 0;
}
