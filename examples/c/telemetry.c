/* Telemetry: connect with TLS, send messages with properties at QoS 1, disconnect after the
 * last PUBACK. Environment: IOTHUB_DEVICE_CONNECTION_STRING; optional IOTHUB_MESSAGE_COUNT
 * (default 1), IOTHUB_MQTT_HOST / IOTHUB_MQTT_PORT / IOTHUB_CA_FILE (see sample_common.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample_common.h"

int main(void) {
  sample_connection c;
  sample_connection_init(&c, sample_env("IOTHUB_DEVICE_CONNECTION_STRING", NULL), NULL);
  sample_connect(&c);

  int count = atoi(sample_env("IOTHUB_MESSAGE_COUNT", "1"));
  for (int i = 0; i < count; i++) {
    char message_id[32];
    snprintf(message_id, sizeof message_id, "msg-%d", i);
    /* The property bag: built in a buffer of ours, one pair at a time (percent-encoded). */
    char bag[128];
    iothub_message_properties properties;
    sample_check(iothub_message_properties_init(&properties, bag, sizeof bag, 0), "properties");
    sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_MESSAGE_ID), iothub_span_from_str(message_id), NULL), "message id");
    sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_TYPE), IOTHUB_SPAN_LITERAL("text/plain"), NULL), "content type");
    sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_ENCODING), IOTHUB_SPAN_LITERAL("utf-8"), NULL), "content encoding");
    sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL("sample"), IOTHUB_SPAN_LITERAL("telemetry.c"), NULL), "application property");

    char topic[256];
    size_t topic_len = 0;
    sample_check(iothub_client_telemetry_get_publish_topic(&c.client, &properties, topic, sizeof topic, &topic_len), "telemetry topic");
    const char *payload = "Bonjour MQTT from Mosquitto";
    printf("sending message %d on %s\n", i, topic);
    sample_publish(&c, topic, payload, strlen(payload));
    printf("message %d acknowledged\n", i);
  }
  sample_close(&c);
  return 0;
}
