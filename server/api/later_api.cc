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
  using C = v1::ContactService::AsyncService;
  C* c = &contact_service_;
  r.Unary(c, &C::RequestCreateContact, NotYet(kContactsLater));
  r.Unary(c, &C::RequestGetContact, NotYet(kContactsLater));
  r.Unary(c, &C::RequestListContacts, NotYet(kContactsLater));
  r.Unary(c, &C::RequestUpdateContact, NotYet(kContactsLater));
  r.Unary(c, &C::RequestDeleteContact, NotYet(kContactsLater));
  r.UnimplementedClientStream(c, &C::RequestImportContacts, kContactsLater);
  r.Unary(c, &C::RequestCreateContactList, NotYet(kContactsLater));
  r.Unary(c, &C::RequestGetContactList, NotYet(kContactsLater));
  r.Unary(c, &C::RequestListContactLists, NotYet(kContactsLater));
  r.Unary(c, &C::RequestDeleteContactList, NotYet(kContactsLater));
  r.Unary(c, &C::RequestAddContactsToList, NotYet(kContactsLater));
  r.Unary(c, &C::RequestRemoveContactsFromList, NotYet(kContactsLater));

  using D = v1::DeliveryService::AsyncService;
  D* d = &delivery_service_;
  r.UnimplementedClientStream(d, &D::RequestReportDeliveryReceipts,
                              kDeliveryLater);
  r.UnimplementedClientStream(d, &D::RequestReportInboundMessages,
                              kDeliveryLater);
}

}  // namespace campaigns::api
