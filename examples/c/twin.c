/* Device twin: PATCH the reported property {"temperature":32}; on the 204 answer GET the twin;
 * on the 200 answer print it and exit. Environment: IOTHUB_DEVICE_CONNECTION_STRING and the
 * optional transport variables. */
#include <stdio.h>
#include <string.h>

#include "sample_common.h"

static volatile bool done = false;
static bool failed = false;
static sample_connection c;

static void on_message(void *context, const char *topic, const void *payload, size_t payload_len) {
  (void)context;
  iothub_incoming incoming;
  if (iothub_parse_received_topic(iothub_span_from_str(topic), &incoming) != IOTHUB_OK ||
      incoming.kind != IOTHUB_INCOMING_TWIN_RESPONSE) {
    return;
  }
  printf("twin response %u for request %.*s\n", incoming.status, (int)incoming.request_id.len, incoming.request_id.ptr);
  if (!iothub_status_is_success(incoming.status)) {
    failed = true;
    done = true;
    return;
  }
  if (incoming.status == 204) {
    printf("reported properties updated (version %llu); getting the twin\n", (unsigned long long)incoming.version);
    char get_topic[128];
    size_t len = 0;
    sample_check(iothub_twin_document_get_publish_topic(IOTHUB_SPAN_LITERAL("2"), get_topic, sizeof get_topic, &len), "twin GET topic");
    mosquitto_publish(c.mosq, NULL, get_topic, 0, NULL, 1, false);
  } else if (incoming.status == 200) {
    printf("twin: %.*s\n", (int)payload_len, (const char *)payload);
    done = true;
  }
}

int main(void) {
  sample_connection_init(&c, sample_env("IOTHUB_DEVICE_CONNECTION_STRING", NULL), NULL);
  const char *filters[] = {IOTHUB_TWIN_RESPONSE_SUBSCRIBE_TOPIC};
  c.filters = filters;
  c.filter_count = 1;
  c.on_message = on_message;
  sample_connect(&c);

  char topic[128];
  size_t len = 0;
  sample_check(iothub_twin_patch_get_publish_topic(IOTHUB_SPAN_LITERAL("1"), topic, sizeof topic, &len), "twin PATCH topic");
  const char *patch = "{\"temperature\": 32}";
  printf("reporting %s on %s\n", patch, topic);
  sample_publish(&c, topic, patch, strlen(patch));
  bool ok = sample_run_until(&c, &done, 30000) && !failed;
  sample_close(&c);
  return ok ? 0 : 1;
}
