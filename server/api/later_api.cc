// Services whose behaviour arrives with later work: they authenticate and
// answer UNIMPLEMENTED, saying which work brings them.
#include "server/api/api.h"

namespace campaigns::api {
namespace {

constexpr char kContactsLater[] =
    "contacts and contact lists arrive with the audience work";
constexpr char kDeliveryLater[] =
    "delivery receipts and inbound messages arrive with the dispatch engine";

}  // namespace

void Api::RegisterLater(Registrar& r) {
  RawService* c = &contact_service_;
  r.NotYet(c, "CreateContact", kContactsLater);
  r.NotYet(c, "GetContact", kContactsLater);
  r.NotYet(c, "ListContacts", kContactsLater);
  r.NotYet(c, "UpdateContact", kContactsLater);
  r.NotYet(c, "DeleteContact", kContactsLater);
  r.NotYet(c, "ImportContacts", kContactsLater);
  r.NotYet(c, "CreateContactList", kContactsLater);
  r.NotYet(c, "GetContactList", kContactsLater);
  r.NotYet(c, "ListContactLists", kContactsLater);
  r.NotYet(c, "DeleteContactList", kContactsLater);
  r.NotYet(c, "AddContactsToList", kContactsLater);
  r.NotYet(c, "RemoveContactsFromList", kContactsLater);

  RawService* d = &delivery_service_;
  r.NotYet(d, "ReportDeliveryReceipts", kDeliveryLater);
  r.NotYet(d, "ReportInboundMessages", kDeliveryLater);
}

}  // namespace campaigns::api
