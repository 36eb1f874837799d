// Services whose behaviour arrives with later work: they authenticate and
// answer UNIMPLEMENTED, saying which work brings them.
#include "server/api/api.h"

namespace campaigns::api {
namespace {

constexpr char kDeliveryLater[] =
    "delivery receipts and inbound messages arrive with the dispatch engine";

}  // namespace

void Api::RegisterLater(Registrar& r) {
  RawService* d = &delivery_service_;
  r.NotYet(d, "ReportDeliveryReceipts", kDeliveryLater);
  r.NotYet(d, "ReportInboundMessages", kDeliveryLater);
}

}  // namespace campaigns::api
