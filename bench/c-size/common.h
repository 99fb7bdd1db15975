/* Shared by the C size scenarios: one compare function for the self-checks, and the
 * platform's HMAC stand-in (checks it was asked to sign vector 1's string and answers with
 * that vector's signature), as azure-sdk-for-c's figures leave HMAC to the platform. */
#include <stddef.h>
#include <stdint.h>

#include "iothub.h"

__attribute__((noinline)) static int written_is(const char *buf, size_t len, const char *expected) {
  size_t n = 0;
  while (expected[n] != '\0') n++;
  if (n != len) return 0;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] != expected[i]) return 0;
  }
  return 1;
}

static int32_t platform_hmac(void *context, const uint8_t *message, size_t message_len, uint8_t *out) {
  static const char expected[] = "iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test\n1471940363";
  static const uint8_t signature[32] = {
      0x48, 0x8b, 0xa6, 0x67, 0x50, 0x02, 0xaa, 0xa3, 0xc9, 0x67, 0x6a, 0x24, 0x1c, 0x39, 0x56, 0xf4,
      0xc4, 0x98, 0x2b, 0x29, 0x04, 0xa6, 0xab, 0x10, 0x63, 0x7c, 0xfa, 0x14, 0xc3, 0x88, 0x09, 0xde};
  (void)context;
  if (!written_is((const char *)message, message_len, expected)) return 1;
  for (int i = 0; i < 32; i++) out[i] = signature[i];
  return 0;
}

/* Telemetry topic with a property bag and a signed SAS password (docs/protocol.md §2.2,
 * vector 1). */
static int telemetry_part(void) {
  char buf[256];
  size_t len = 0;
  iothub_client client;
  if (iothub_client_init(&client, IOTHUB_SPAN_LITERAL("iot-hub-for-test.azure-devices.net"), IOTHUB_SPAN_LITERAL("iot-device-for-test"), (iothub_span){0, 0}, 0) != IOTHUB_OK) return 10;
  iothub_client dev3;
  if (iothub_client_init(&dev3, IOTHUB_SPAN_LITERAL("h"), IOTHUB_SPAN_LITERAL("dev3"), (iothub_span){0, 0}, 0) != IOTHUB_OK) return 10;
  char bag[128];
  iothub_message_properties p;
  if (iothub_message_properties_init(&p, bag, sizeof bag, 0) != IOTHUB_OK) return 11;
  if (iothub_message_properties_append(&p, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_MESSAGE_ID), IOTHUB_SPAN_LITERAL("mid-1"), 0) != IOTHUB_OK) return 11;
  if (iothub_message_properties_append(&p, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_TYPE), IOTHUB_SPAN_LITERAL("application/json"), 0) != IOTHUB_OK) return 11;
  if (iothub_message_properties_append(&p, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_ENCODING), IOTHUB_SPAN_LITERAL("utf-8"), 0) != IOTHUB_OK) return 11;
  if (iothub_client_telemetry_get_publish_topic(&dev3, &p, buf, sizeof buf, &len) != IOTHUB_OK) return 11;
  if (!written_is(buf, len, "devices/dev3/messages/events/%24.mid=mid-1&%24.ct=application%2Fjson&%24.ce=utf-8")) return 12;
  if (iothub_client_sas_get_password_with_hmac(&client, platform_hmac, 0, (iothub_span){0, 0}, 1471940363u, buf, sizeof buf, &len) != IOTHUB_OK) return 13;
  if (!written_is(buf, len, "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363")) return 14;
  return 0;
}
