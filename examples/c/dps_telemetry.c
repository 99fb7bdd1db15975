/* DPS provisioning, then telemetry: register with the Device Provisioning Service (symmetric
 * key, individual enrollment), connect to the assigned hub as the assigned device and send
 * one telemetry message. Environment: IOTHUB_DPS_ID_SCOPE, IOTHUB_DPS_REGISTRATION_ID,
 * IOTHUB_DPS_KEY (the enrollment's key; with IOTHUB_DPS_GROUP_KEY=1 it is a group key and the
 * device key is derived), IOTHUB_DPS_HOST (default global.azure-devices-provisioning.net),
 * and the optional transport variables (the same port and CA are used for DPS and the hub). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample_common.h"

static iothub_dps_registration registration;
static sample_connection dps;
static char dps_token[512];

static void on_dps_message(void *context, const char *topic, const void *payload, size_t payload_len) {
  (void)context;
  bool consumed = false;
  iothub_result rc = iothub_dps_registration_handle_publish(&registration, iothub_span_from_str(topic), (iothub_span){payload, payload_len}, sample_now_ms(), &consumed);
  printf("DPS answer on %s: %s%s\n", topic, iothub_result_name((int32_t)rc), consumed ? "" : " (ignored)");
}

int main(void) {
  const char *scope = sample_env("IOTHUB_DPS_ID_SCOPE", NULL);
  const char *registration_id = sample_env("IOTHUB_DPS_REGISTRATION_ID", NULL);
  const char *key = sample_env("IOTHUB_DPS_KEY", NULL);
  const char *dps_host = sample_env("IOTHUB_DPS_HOST", "global.azure-devices-provisioning.net");
  char derived[64];
  size_t len = 0;
  if (strcmp(sample_env("IOTHUB_DPS_GROUP_KEY", "0"), "1") == 0) {
    sample_check(iothub_dps_derive_device_key(iothub_span_from_str(key), iothub_span_from_str(registration_id), derived, sizeof derived, &len), "derive key");
    key = derived;
  }

  /* 1. The DPS connection: client id = registration id, its own username and password. */
  memset(&dps, 0, sizeof dps);
  sample_check(iothub_client_init(&dps.client, iothub_span_from_str(dps_host), iothub_span_from_str(registration_id), (iothub_span){NULL, 0}, NULL), "DPS client");
  sample_connection_init_client(&dps, key);
  sample_check(iothub_dps_get_username(iothub_span_from_str(scope), iothub_span_from_str(registration_id), dps.username, sizeof dps.username, &len), "DPS username");
  uint64_t expiry = sample_unix_secs() + 3600;
  sample_check(iothub_dps_sas_get_password(iothub_span_from_str(scope), iothub_span_from_str(registration_id), iothub_span_from_str(key), expiry, dps_token, sizeof dps_token, &len), "DPS password");
  dps.fixed_token = (iothub_span){dps_token, len};
  const char *filters[] = {IOTHUB_DPS_SUBSCRIBE_TOPIC};
  dps.filters = filters;
  dps.filter_count = 1;
  dps.on_message = on_dps_message;
  sample_connect(&dps);

  /* 2. Drive the registration: send what it asks, feed it answers and the clock. */
  sample_check(iothub_dps_registration_init(&registration, iothub_span_from_str(registration_id), (iothub_span){NULL, 0}), "registration init");
  sample_check(iothub_dps_registration_start(&registration, sample_now_ms()), "registration start");
  iothub_dps_outcome outcome;
  for (;;) {
    char buf[512];
    iothub_dps_transmit tx;
    size_t needed = 0;
    sample_check(iothub_dps_registration_poll_transmit(&registration, buf, sizeof buf, &tx, &needed), "poll transmit");
    if (tx.ready) {
      printf("DPS request on %s\n", tx.topic.ptr);
      mosquitto_publish(dps.mosq, NULL, tx.topic.ptr, (int)tx.payload.len, tx.payload.ptr, 1, false);
    }
    sample_check(iothub_dps_registration_get_outcome(&registration, &outcome), "outcome");
    if (outcome.status != IOTHUB_DPS_PENDING) break;
    uint64_t at = UINT64_MAX;
    sample_check(iothub_dps_registration_poll_timeout(&registration, &at), "poll timeout");
    if (sample_now_ms() >= at) {
      sample_check(iothub_dps_registration_handle_timeout(&registration, sample_now_ms()), "handle timeout");
    }
    sample_run(&dps, 100);
  }
  sample_close(&dps);
  if (outcome.status != IOTHUB_DPS_ASSIGNED) {
    printf("registration ended with status %d: %u %u %.*s\n", (int)outcome.status, outcome.error_status, outcome.error_code, (int)outcome.message.len, outcome.message.ptr);
    return 1;
  }
  /* The outcome's spans live in `registration`; copy them before anything else changes it. */
  char hub[256], device[128];
  snprintf(hub, sizeof hub, "%.*s", (int)outcome.assigned_hub.len, outcome.assigned_hub.ptr);
  snprintf(device, sizeof device, "%.*s", (int)outcome.device_id.len, outcome.device_id.ptr);
  printf("assigned to %s as %s\n", hub, device);

  /* 3. The hub connection, with the same key, and one telemetry message. */
  sample_connection c;
  memset(&c, 0, sizeof c);
  sample_check(iothub_client_init(&c.client, iothub_span_from_str(hub), iothub_span_from_str(device), (iothub_span){NULL, 0}, NULL), "hub client");
  sample_connection_init_client(&c, key);
  sample_connect(&c);
  char topic[256];
  sample_check(iothub_client_telemetry_get_publish_topic(&c.client, NULL, topic, sizeof topic, &len), "telemetry topic");
  const char *payload = "{\"provisioned\":true}";
  sample_publish(&c, topic, payload, strlen(payload));
  printf("telemetry sent as %s\n", device);
  sample_close(&c);
  return 0;
}
