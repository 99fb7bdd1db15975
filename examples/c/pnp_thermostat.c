/* Plug and Play thermostat (dtmi:com:example:Thermostat;1): announces its model id, reports
 * maxTempSinceLastReboot, acknowledges targetTemperature (from the twin at start and from
 * every desired patch), answers the getMaxMinReport command, and sends {"temperature":…}
 * every 2 s. Runs for IOTHUB_RUN_SECONDS (default: forever), renewing its SAS token by
 * reconnecting (IOTHUB_SAS_TTL_SECS). Environment: IOTHUB_DEVICE_CONNECTION_STRING and the
 * optional transport variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sample_common.h"

#define MODEL_ID "dtmi:com:example:Thermostat;1"

static sample_connection c;
static double current = 22.0, max_temp = 22.0, min_temp = 22.0, sum = 0.0;
static unsigned samples = 0;
static unsigned next_rid = 0;
static char start_time[32];

static void iso_now(char *out, size_t size) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Publishes a reported-properties patch with a fresh request id (the 204 arrives later). */
static void report(const char *patch) {
  char rid[16], topic[128];
  size_t len = 0;
  snprintf(rid, sizeof rid, "%u", next_rid++);
  sample_check(iothub_twin_patch_get_publish_topic(iothub_span_from_str(rid), topic, sizeof topic, &len), "PATCH topic");
  printf("reporting %s\n", patch);
  mosquitto_publish(c.mosq, NULL, topic, (int)strlen(patch), patch, 1, false);
}

static void report_max(void) {
  char value[32], patch[128];
  size_t len = 0;
  snprintf(value, sizeof value, "%.1f", max_temp);
  sample_check(iothub_pnp_reported_property_get_payload((iothub_span){NULL, 0}, IOTHUB_SPAN_LITERAL("maxTempSinceLastReboot"), iothub_span_from_str(value), patch, sizeof patch, &len), "reported property");
  report(patch);
}

/* Applies targetTemperature from a desired section (a patch, or the twin's "desired"). */
static void apply_desired(iothub_span desired, uint64_t version) {
  iothub_span target;
  if (iothub_json_get_member(desired, IOTHUB_SPAN_LITERAL("targetTemperature"), &target) != IOTHUB_OK) return;
  char value[64];
  snprintf(value, sizeof value, "%.*s", (int)target.len, target.ptr);
  current = strtod(value, NULL);
  if (current > max_temp) max_temp = current;
  if (current < min_temp) min_temp = current;
  printf("targetTemperature %s (desired version %llu)\n", value, (unsigned long long)version);
  char ack[256];
  size_t len = 0;
  sample_check(iothub_pnp_writable_ack_get_payload((iothub_span){NULL, 0}, IOTHUB_SPAN_LITERAL("targetTemperature"), target, 200, version, IOTHUB_SPAN_LITERAL("Successfully updated target temperature"), ack, sizeof ack, &len), "writable ack");
  report(ack);
  report_max();
}

static void answer_command(const iothub_incoming *request, const void *payload, size_t payload_len) {
  iothub_span component, command;
  sample_check(iothub_pnp_parse_command_name(request->method_name, &component, &command), "command name");
  printf("command %.*s (request %.*s) payload %.*s\n", (int)command.len, command.ptr, (int)request->request_id.len, request->request_id.ptr, (int)payload_len, (const char *)payload);
  char body[256], end_time[32];
  uint16_t status = 200;
  if (component.len == 0 && command.len == strlen("getMaxMinReport") && memcmp(command.ptr, "getMaxMinReport", command.len) == 0) {
    iso_now(end_time, sizeof end_time);
    double avg = samples > 0 ? sum / samples : current;
    snprintf(body, sizeof body, "{\"maxTemp\":%.1f,\"minTemp\":%.1f,\"avgTemp\":%.1f,\"startTime\":\"%s\",\"endTime\":\"%s\"}", max_temp, min_temp, avg, start_time, end_time);
  } else {
    status = 404;
    snprintf(body, sizeof body, "{}");
  }
  char topic[128];
  size_t len = 0;
  sample_check(iothub_methods_response_get_publish_topic(request->request_id, status, topic, sizeof topic, &len), "method response topic");
  printf("answering %u %s\n", status, body);
  mosquitto_publish(c.mosq, NULL, topic, (int)strlen(body), body, 1, false);
}

static void on_message(void *context, const char *topic, const void *payload, size_t payload_len) {
  (void)context;
  iothub_incoming in;
  iothub_result rc = iothub_parse_received_topic(iothub_span_from_str(topic), &in);
  if (rc != IOTHUB_OK) {
    printf("ignoring %s (%s)\n", topic, iothub_result_name((int32_t)rc));
    return;
  }
  iothub_span body = {payload, payload_len};
  switch (in.kind) {
    case IOTHUB_INCOMING_METHOD_REQUEST:
      answer_command(&in, payload, payload_len);
      break;
    case IOTHUB_INCOMING_DESIRED_PATCH:
      apply_desired(body, in.version);
      break;
    case IOTHUB_INCOMING_TWIN_RESPONSE:
      if (in.status == 200) {
        /* The twin at start: take the desired targetTemperature, if any. */
        iothub_span desired, version;
        if (iothub_json_get_member(body, IOTHUB_SPAN_LITERAL("desired"), &desired) == IOTHUB_OK &&
            iothub_json_get_member(desired, IOTHUB_SPAN_LITERAL("$version"), &version) == IOTHUB_OK) {
          char text[32];
          snprintf(text, sizeof text, "%.*s", (int)version.len, version.ptr);
          apply_desired(desired, strtoull(text, NULL, 10));
        }
      } else if (!iothub_status_is_success(in.status)) {
        printf("twin request %.*s failed with %u\n", (int)in.request_id.len, in.request_id.ptr, in.status);
      }
      break;
    default:
      break;
  }
}

int main(void) {
  sample_connection_init(&c, sample_env("IOTHUB_DEVICE_CONNECTION_STRING", NULL), MODEL_ID);
  const char *filters[] = {IOTHUB_TWIN_RESPONSE_SUBSCRIBE_TOPIC, IOTHUB_METHODS_SUBSCRIBE_TOPIC, IOTHUB_TWIN_PATCH_SUBSCRIBE_TOPIC};
  c.filters = filters;
  c.filter_count = 3;
  c.on_message = on_message;
  iso_now(start_time, sizeof start_time);
  sample_connect(&c);

  char rid[16], topic[256];
  size_t len = 0;
  snprintf(rid, sizeof rid, "%u", next_rid++);
  sample_check(iothub_twin_document_get_publish_topic(iothub_span_from_str(rid), topic, sizeof topic, &len), "GET topic");
  mosquitto_publish(c.mosq, NULL, topic, 0, NULL, 1, false);
  report_max();

  char bag[64];
  iothub_message_properties properties;
  sample_check(iothub_message_properties_init(&properties, bag, sizeof bag, 0), "properties");
  sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_TYPE), IOTHUB_SPAN_LITERAL("application/json"), NULL), "content type");
  sample_check(iothub_message_properties_append(&properties, IOTHUB_SPAN_LITERAL(IOTHUB_PROPERTY_CONTENT_ENCODING), IOTHUB_SPAN_LITERAL("utf-8"), NULL), "content encoding");
  sample_check(iothub_client_telemetry_get_publish_topic(&c.client, &properties, topic, sizeof topic, &len), "telemetry topic");

  int run_seconds = atoi(sample_env("IOTHUB_RUN_SECONDS", "0"));
  uint64_t deadline = run_seconds > 0 ? sample_now_ms() + 1000u * (uint64_t)run_seconds : UINT64_MAX;
  while (sample_now_ms() < deadline) {
    char body[64];
    snprintf(body, sizeof body, "{\"temperature\":%.1f}", current);
    sum += current;
    samples++;
    printf("telemetry %s\n", body);
    fflush(stdout);
    mosquitto_publish(c.mosq, NULL, topic, (int)strlen(body), body, 1, false);
    sample_run(&c, 2000);
  }
  sample_close(&c);
  return 0;
}
