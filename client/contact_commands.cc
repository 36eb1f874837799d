// campaignctl contacts and lists: the ContactService commands.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "campaigns/v1/contact.grpc.pb.h"
#include "client/commands.h"
#include "client/import_file.h"
#include "client/proto_flags.h"

namespace campaigns::client {
namespace {

struct ContactImportOptions : ImportOptions {
  std::string channel;
  std::string list_id;
  std::vector<std::string> tags;
};

int RunContactImport(Env& env, const ContactImportOptions& opts) {
  v1::ImportContactsRequest first;
  absl::Status set = SetFieldFromString(&first, "channel", opts.channel);
  if (!set.ok()) {
    return env.ReportUsage("--channel: " + std::string(set.message()));
  }
  first.set_list_id(opts.list_id);
  for (const std::string& t : opts.tags) first.add_tags(t);
  return RunImport<v1::ImportContactsRequest, v1::ImportContactsResponse>(
      env, opts, std::move(first),
      [](const std::shared_ptr<grpc::Channel>& channel,
         grpc::ClientContext* ctx, v1::ImportContactsResponse* out) {
        return v1::ContactService::Stub(channel).ImportContacts(ctx, out);
      });
}

// `contacts create|get|list|update|import|delete`.
void AddContacts(CommandSet* commands) {
  using Service = v1::ContactService::Stub;
  CLI::App* contacts = commands->AddGroup(
      "contacts", "Contacts: an address on a channel with attributes and tags");

  UnaryCommand& create =
      commands->AddUnary(contacts, "create", "Create a contact",
                         &Service::CreateContact, PrintObject());
  create
      .Flag("address", "address",
            "Phone number, email address, chat or Slack id")
      ->required();
  create.Flag("--channel", "channel", "Channel")->required();
  create.Flag("--attr", "attributes",
              "Attribute, e.g. first_name=Ann (repeatable)");
  create.Flag("--tag", "tags", "Tag (repeatable)");
  create.Flag("--region", "default_region",
              "Region for numbers without a country code, e.g. US");
  create.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(contacts, "get", "Show a contact", &Service::GetContact,
                 PrintObject())
      .Flag("id", "id", "Contact id (ct_...)")
      ->required();

  UnaryCommand& list = commands->AddUnary(
      contacts, "list", "List contacts (newest first)", &Service::ListContacts,
      PrintList({{"ID", "id"},
                 {"ADDRESS", "address"},
                 {"CHANNEL", "channel"},
                 {"TAGS", "tags"},
                 {"UPDATED", "updated_at"}}));
  list.Flag("--tag", "tag", "Only contacts with this tag");
  list.Flag("--list", "list_id", "Only members of this contact list (cl_...)");
  list.Flag("--channel", "channel", "Only contacts of this channel");
  list.WithPaging();

  UnaryCommand& update = commands->AddUnary(
      contacts, "update",
      "Change a contact; exactly the given flags are changed. --attr and "
      "--tag replace all of its attributes / tags.",
      &Service::UpdateContact, PrintObject());
  update.Flag("id", "id", "Contact id (ct_...)")->required();
  update.Flag("--address", "address",
              "New address (phone numbers with their country code)");
  update.Flag("--attr", "attributes",
              "Attribute, e.g. first_name=Ann (repeatable)");
  update.Flag("--tag", "tags", "Tag (repeatable)");
  update.WithUpdateMask();

  auto import_opts = std::make_shared<ContactImportOptions>();
  import_opts->list_key = "contacts";
  CLI::App* import = commands->AddCommand(
      contacts, "import",
      "Stream a CSV or JSON file of contacts: new addresses become contacts, "
      "known ones get the file's attributes merged in (all or nothing)",
      [import_opts](Env& env) { return RunContactImport(env, *import_opts); });
  AddImportFileOptions(import, import_opts.get(), "attributes");
  import->add_option("--channel", import_opts->channel, "Channel")->required();
  import->add_option("--list", import_opts->list_id,
                     "Add every imported contact to this list (cl_...)");
  import->add_option("--tag", import_opts->tags,
                     "Add this tag to every imported contact (repeatable)");

  commands
      ->AddUnary(contacts, "delete", "Delete a contact (and its memberships)",
                 &Service::DeleteContact, PrintDeleted("contact"))
      .Flag("id", "id", "Contact id (ct_...)")
      ->required();
}

// `lists create|get|list|delete|add|remove`.
void AddContactLists(CommandSet* commands) {
  using Service = v1::ContactService::Stub;
  CLI::App* lists = commands->AddGroup(
      "lists", "Contact lists: named sets of contacts, a campaign audience");

  UnaryCommand& create =
      commands->AddUnary(lists, "create", "Create a contact list",
                         &Service::CreateContactList, PrintObject());
  create.Flag("--name", "name", "List name")->required();
  create.Flag("--description", "description", "What the list is for");
  create.Flag("--request-id", "request_id", "Idempotency key");

  commands
      ->AddUnary(lists, "get", "Show a contact list and its size",
                 &Service::GetContactList, PrintObject())
      .Flag("id", "id", "Contact list id (cl_...)")
      ->required();

  commands
      ->AddUnary(lists, "list", "List contact lists",
                 &Service::ListContactLists,
                 PrintList({{"ID", "id"},
                            {"NAME", "name"},
                            {"CONTACTS", "contact_count"},
                            {"CREATED", "created_at"}}))
      .WithPaging();

  commands
      ->AddUnary(lists, "delete",
                 "Delete a contact list (its contacts stay); refused while a "
                 "campaign that is not finished uses it",
                 &Service::DeleteContactList, PrintDeleted("contact list"))
      .Flag("id", "id", "Contact list id (cl_...)")
      ->required();

  UnaryCommand& add =
      commands->AddUnary(lists, "add", "Add contacts to a list",
                         &Service::AddContactsToList, PrintObject());
  add.Flag("list_id", "list_id", "Contact list id (cl_...)")->required();
  add.Flag("contact_ids", "contact_ids", "Contact ids (ct_...)")
      ->required()
      ->expected(CLI::detail::expected_max_vector_size);

  UnaryCommand& remove =
      commands->AddUnary(lists, "remove", "Remove contacts from a list",
                         &Service::RemoveContactsFromList, PrintObject());
  remove.Flag("list_id", "list_id", "Contact list id (cl_...)")->required();
  remove.Flag("contact_ids", "contact_ids", "Contact ids (ct_...)")
      ->required()
      ->expected(CLI::detail::expected_max_vector_size);
}

}  // namespace

void AddContactCommands(CommandSet* commands) {
  AddContacts(commands);
  AddContactLists(commands);
}

}  // namespace campaigns::client
