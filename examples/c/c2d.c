/* Cloud-to-device: subscribe to the device's C2D topic and print each message with its
 * properties; exit after IOTHUB_C2D_COUNT messages (default 1) or IOTHUB_RUN_SECONDS
 * (default 300). A message is completed by the PUBACK libmosquitto sends (QoS 1).
 * Environment: IOTHUB_DEVICE_CONNECTION_STRING and the optional transport variables. */
#include <stdio.h>
#include <stdlib.h>

#include "sample_common.h"

static int received = 0;

static void print_decoded(const char *label, iothub_span raw) {
  char text[256];
  size_t len = 0;
  iothub_result rc = iothub_property_decode(raw, text, sizeof text, &len);
  printf("%s%s", label, rc == IOTHUB_OK ? text : "(undecodable)");
}

static void on_message(void *context, const char *topic, const void *payload, size_t payload_len) {
  (void)context;
  iothub_incoming incoming;
  iothub_result rc = iothub_parse_received_topic(iothub_span_from_str(topic), &incoming);
  if (rc != IOTHUB_OK || incoming.kind != IOTHUB_INCOMING_C2D) {
    printf("ignoring %s (%s)\n", topic, iothub_result_name((int32_t)rc));
    return;
  }
  printf("C2D message: %.*s\n", (int)payload_len, (const char *)payload);
  iothub_properties_iterator it;
  iothub_property property;
  sample_check(iothub_properties_iterator_init(&it, incoming.properties), "iterator");
  while (iothub_properties_next(&it, &property) == IOTHUB_OK) {
    print_decoded("  property ", property.name);
    print_decoded(" = ", property.value);
    printf("\n");
  }
  received++;
}

int main(void) {
  sample_connection c;
  sample_connection_init(&c, sample_env("IOTHUB_DEVICE_CONNECTION_STRING", NULL), NULL);
  char filter[256];
  size_t len = 0;
  sample_check(iothub_client_c2d_get_subscribe_topic(&c.client, filter, sizeof filter, &len), "C2D filter");
  const char *filters[] = {filter};
  c.filters = filters;
  c.filter_count = 1;
  c.on_message = on_message;
  sample_connect(&c);
  printf("subscribed to %s\n", filter);
  fflush(stdout);

  int want = atoi(sample_env("IOTHUB_C2D_COUNT", "1"));
  uint64_t deadline = sample_now_ms() + 1000u * (uint64_t)atoi(sample_env("IOTHUB_RUN_SECONDS", "300"));
  while (received < want && sample_now_ms() < deadline) sample_run(&c, 100);
  sample_close(&c);
  printf("received %d C2D message(s)\n", received);
  return received >= want ? 0 : 1;
}
