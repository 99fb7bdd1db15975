/* azure-sdk-for-c's "Hub + DPS + Plug and Play" feature set through the C API: the telemetry
 * part, twin topics and responses, a writable-property ack, a method request answered, a C2D
 * message and its properties, and a DPS registration driven 202 -> poll -> 200 assigned
 * (the same work as bench/nostd-consumer's full scenario). */
#include "common.h"

#define S IOTHUB_SPAN_LITERAL
#define NONE ((iothub_span){0, 0})

static int span_is(iothub_span s, const char *expected) { return written_is(s.ptr, s.len, expected); }

int scenario(void) {
  int rc = telemetry_part();
  if (rc != 0) return rc;
  char buf[512];
  size_t len = 0;
  iothub_incoming in;

  if (iothub_twin_document_get_publish_topic(S("1"), buf, sizeof buf, &len) != IOTHUB_OK || !written_is(buf, len, "$iothub/twin/GET/?$rid=1")) return 21;
  if (iothub_twin_patch_get_publish_topic(S("0"), buf, sizeof buf, &len) != IOTHUB_OK || !written_is(buf, len, "$iothub/twin/PATCH/properties/reported/?$rid=0")) return 23;
  if (iothub_parse_received_topic(S("$iothub/twin/res/204/?$rid=0&$version=2"), &in) != IOTHUB_OK || in.kind != IOTHUB_INCOMING_TWIN_RESPONSE || in.status != 204 || in.version != 2) return 24;
  if (iothub_parse_received_topic(S("$iothub/twin/PATCH/properties/desired/?$version=3"), &in) != IOTHUB_OK || in.kind != IOTHUB_INCOMING_DESIRED_PATCH) return 25;
  uint64_t version = in.version;

  if (iothub_pnp_writable_ack_get_payload(NONE, S("targetTemperature"), S("23"), 200, version, S("complete"), buf, sizeof buf, &len) != IOTHUB_OK) return 26;
  if (!written_is(buf, len, "{\"targetTemperature\":{\"value\":23,\"ac\":200,\"av\":3,\"ad\":\"complete\"}}")) return 27;

  if (iothub_parse_received_topic(S("$iothub/methods/POST/getMaxMinReport/?$rid=1a"), &in) != IOTHUB_OK || in.kind != IOTHUB_INCOMING_METHOD_REQUEST || !span_is(in.method_name, "getMaxMinReport")) return 28;
  char topic[64];
  if (iothub_methods_response_get_publish_topic(in.request_id, 200, topic, sizeof topic, &len) != IOTHUB_OK) return 29;
  if (!written_is(topic, len, "$iothub/methods/res/200/?$rid=1a")) return 30;

  if (iothub_parse_received_topic(S("devices/dev3/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound&property1=value%201"), &in) != IOTHUB_OK || in.kind != IOTHUB_INCOMING_C2D) return 31;
  iothub_properties_iterator it;
  iothub_property property;
  int count = 0;
  iothub_properties_iterator_init(&it, in.properties);
  while (iothub_properties_next(&it, &property) == IOTHUB_OK) count++;
  if (count != 3) return 32;

  static iothub_dps_registration reg;
  iothub_dps_transmit tx;
  if (iothub_dps_registration_init(&reg, S("sn-007"), NONE) != IOTHUB_OK) return 39;
  iothub_dps_registration_start(&reg, 0);
  if (iothub_dps_registration_poll_transmit(&reg, buf, sizeof buf, &tx, 0) != IOTHUB_OK || !tx.ready) return 41;
  if (!span_is(tx.topic, "$dps/registrations/PUT/iotdps-register/?$rid=0")) return 42;
  if (iothub_dps_registration_handle_publish(&reg, S("$dps/registrations/res/202/?$rid=0&retry-after=3"), S("{\"operationId\":\"4.d0a6.e717\",\"status\":\"assigning\"}"), 0, 0) != IOTHUB_OK) return 43;
  uint64_t wake = 0;
  if (iothub_dps_registration_poll_timeout(&reg, &wake) != IOTHUB_OK || wake != 3000) return 45;
  iothub_dps_registration_handle_timeout(&reg, wake);
  if (iothub_dps_registration_poll_transmit(&reg, buf, sizeof buf, &tx, 0) != IOTHUB_OK || !tx.ready) return 47;
  if (!span_is(tx.topic, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=4.d0a6.e717")) return 48;
  if (iothub_dps_registration_handle_publish(&reg, S("$dps/registrations/res/200/?$rid=1"), S("{\"operationId\":\"4.d0a6.e717\",\"status\":\"assigned\",\"registrationState\":{\"assignedHub\":\"contoso.azure-devices.net\",\"deviceId\":\"sn-007\",\"status\":\"assigned\"}}"), wake, 0) != IOTHUB_OK) return 49;
  iothub_dps_outcome outcome;
  if (iothub_dps_registration_get_outcome(&reg, &outcome) != IOTHUB_OK || outcome.status != IOTHUB_DPS_ASSIGNED) return 50;
  if (!span_is(outcome.assigned_hub, "contoso.azure-devices.net") || !span_is(outcome.device_id, "sn-007")) return 51;
  return 0;
}
