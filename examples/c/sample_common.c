#include "sample_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reconnect this long before the token expires. */
#define RENEW_MARGIN_SECS 2

uint64_t sample_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sample_unix_secs(void) { return (uint64_t)time(NULL); }

const char *sample_env(const char *name, const char *fallback) {
  const char *value = getenv(name);
  if (value != NULL && value[0] != '\0') return value;
  if (fallback != NULL) return fallback;
  fprintf(stderr, "set %s in the environment\n", name);
  exit(2);
}

void sample_check(iothub_result rc, const char *what) {
  if (rc != IOTHUB_OK) {
    fprintf(stderr, "%s failed: %s\n", what, iothub_result_name((int32_t)rc));
    exit(1);
  }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
  (void)mosq;
  sample_connection *c = obj;
  c->connack = rc;
  c->connected = (rc == 0);
  if (rc != 0) {
    printf("Connection refused (CONNACK %d). Please check DeviceId, IoTHub name or if your SAS Token has expired.\n", rc);
    return;
  }
  printf("connected as %s\n", c->client_id);
  c->subscribed = 0;
  for (size_t i = 0; i < c->filter_count; i++) {
    if (mosquitto_subscribe(mosq, NULL, c->filters[i], 1) != MOSQ_ERR_SUCCESS) {
      fprintf(stderr, "subscribe %s failed\n", c->filters[i]);
    }
  }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted) {
  (void)mosq; (void)mid;
  sample_connection *c = obj;
  for (int i = 0; i < count; i++) {
    if (granted[i] == 0x80) fprintf(stderr, "a subscription was refused\n");
  }
  c->subscribed++;
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
  (void)mosq;
  sample_connection *c = obj;
  c->connected = false;
  if (rc != 0) printf("disconnected unexpectedly (%d)\n", rc);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid) {
  (void)mosq;
  sample_connection *c = obj;
  if (mid == c->pending_mid) c->pending_mid = -1;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
  (void)mosq;
  sample_connection *c = obj;
  if (c->on_message != NULL) c->on_message(c->context, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

/* libmosquitto is initialised while any connection is open (the DPS sample opens two in turn). */
static int open_connections = 0;

static void common_init(sample_connection *c) {
  if (open_connections++ == 0) mosquitto_lib_init();
  c->port = atoi(sample_env("IOTHUB_MQTT_PORT", "8883"));
  c->ca_file = getenv("IOTHUB_CA_FILE");
  c->token_ttl_secs = (uint32_t)strtoul(sample_env("IOTHUB_SAS_TTL_SECS", "3600"), NULL, 10);
  c->pending_mid = -1;
  const char *host = getenv("IOTHUB_MQTT_HOST");
  if (host == NULL || host[0] == '\0') {
    snprintf(c->host_buf, sizeof c->host_buf, "%.*s", (int)c->client.host.len, c->client.host.ptr);
  } else {
    snprintf(c->host_buf, sizeof c->host_buf, "%s", host);
  }
  c->dial_host = c->host_buf;
  size_t len = 0;
  sample_check(iothub_client_get_client_id(&c->client, c->client_id, sizeof c->client_id, &len), "client id");
  sample_check(iothub_client_get_username(&c->client, c->username, sizeof c->username, &len), "username");
  c->mosq = mosquitto_new(c->client_id, true, c);
  if (c->mosq == NULL) {
    fprintf(stderr, "mosquitto_new failed\n");
    exit(1);
  }
  mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_connect_callback_set(c->mosq, on_connect);
  mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
  mosquitto_publish_callback_set(c->mosq, on_publish);
  mosquitto_message_callback_set(c->mosq, on_message);
  mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
  if (mosquitto_tls_set(c->mosq, c->ca_file, c->ca_file == NULL ? "/etc/ssl/certs" : NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS) {
    fprintf(stderr, "mosquitto_tls_set failed\n");
    exit(1);
  }
}

void sample_connection_init(sample_connection *c, const char *connection_string, const char *model_id) {
  memset(c, 0, sizeof *c);
  iothub_connection_string cs;
  sample_check(iothub_connection_string_parse(iothub_span_from_str(connection_string), &cs), "parse connection string");
  iothub_client_options options = iothub_client_options_default();
  if (model_id != NULL) options.model_id = iothub_span_from_str(model_id);
  sample_check(iothub_client_init(&c->client, cs.host_name, cs.device_id, cs.module_id, &options), "client init");
  switch (cs.credential) {
    case IOTHUB_CREDENTIAL_DEVICE_KEY:
    case IOTHUB_CREDENTIAL_MODULE_KEY:
    case IOTHUB_CREDENTIAL_DEVICE_POLICY_KEY:
      c->key = cs.shared_access_key;
      c->policy = cs.shared_access_key_name;
      break;
    case IOTHUB_CREDENTIAL_SAS_TOKEN:
      c->fixed_token = cs.shared_access_signature;
      break;
    default:
      fprintf(stderr, "this sample needs a device key or a SAS token connection string\n");
      exit(2);
  }
  common_init(c);
}

void sample_connection_init_client(sample_connection *c, const char *key) {
  c->key = iothub_span_from_str(key);
  c->policy = (iothub_span){NULL, 0};
  c->fixed_token = (iothub_span){NULL, 0};
  common_init(c);
}

/* Signs a new password valid for token_ttl_secs (or takes the fixed token and its expiry). */
static void make_password(sample_connection *c) {
  size_t len = 0;
  if (c->fixed_token.len > 0) {
    sample_check(iothub_sas_token_get_expiry(c->fixed_token, &c->token_expiry), "token expiry");
    if (c->fixed_token.len >= sizeof c->password) {
      fprintf(stderr, "token too long\n");
      exit(1);
    }
    memcpy(c->password, c->fixed_token.ptr, c->fixed_token.len);
    c->password[c->fixed_token.len] = '\0';
    return;
  }
  c->token_expiry = sample_unix_secs() + c->token_ttl_secs;
  sample_check(iothub_client_sas_get_password(&c->client, c->key, c->policy, c->token_expiry, c->password, sizeof c->password, &len), "sign SAS token");
  printf("signed a SAS token valid until %" PRIu64 "\n", c->token_expiry);
}

void sample_connect(sample_connection *c) {
  make_password(c);
  if (c->token_expiry <= sample_unix_secs()) {
    fprintf(stderr, "the SAS token has expired\n");
    exit(1);
  }
  mosquitto_username_pw_set(c->mosq, c->username, c->password);
  c->connack = -1;
  int rc = mosquitto_connect(c->mosq, c->dial_host, c->port, 60);
  if (rc != MOSQ_ERR_SUCCESS) {
    fprintf(stderr, "connect to %s:%d failed: %s\n", c->dial_host, c->port, mosquitto_strerror(rc));
    exit(1);
  }
  uint64_t deadline = sample_now_ms() + 30000;
  while (c->connack == -1 && sample_now_ms() < deadline) {
    mosquitto_loop(c->mosq, 100, 1);
  }
  if (!c->connected) exit(1);
  deadline = sample_now_ms() + 30000;
  while (c->subscribed < (int)c->filter_count && sample_now_ms() < deadline) {
    mosquitto_loop(c->mosq, 100, 1);
  }
}

/* Reconnects with a fresh token shortly before the current one expires. */
static void renew_if_due(sample_connection *c) {
  if (c->fixed_token.len > 0 || sample_unix_secs() + RENEW_MARGIN_SECS < c->token_expiry) return;
  printf("SAS token expires at %" PRIu64 ": reconnecting with a new one\n", c->token_expiry);
  mosquitto_disconnect(c->mosq);
  mosquitto_loop(c->mosq, 100, 1);
  sample_connect(c);
}

void sample_run(sample_connection *c, int timeout_ms) {
  uint64_t deadline = sample_now_ms() + (uint64_t)timeout_ms;
  do {
    renew_if_due(c);
    int rc = mosquitto_loop(c->mosq, 100, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
      fprintf(stderr, "network error: %s; reconnecting\n", mosquitto_strerror(rc));
      sample_connect(c);
    }
  } while (sample_now_ms() < deadline);
}

bool sample_run_until(sample_connection *c, const volatile bool *flag, int timeout_ms) {
  uint64_t deadline = sample_now_ms() + (uint64_t)timeout_ms;
  while (!*flag && sample_now_ms() < deadline) sample_run(c, 50);
  return *flag;
}

void sample_publish(sample_connection *c, const char *topic, const void *payload, size_t len) {
  int mid = 0;
  int rc = mosquitto_publish(c->mosq, &mid, topic, (int)len, payload, 1, false);
  if (rc != MOSQ_ERR_SUCCESS) {
    fprintf(stderr, "publish failed: %s\n", mosquitto_strerror(rc));
    exit(1);
  }
  c->pending_mid = mid;
  uint64_t deadline = sample_now_ms() + 30000;
  while (c->pending_mid == mid && sample_now_ms() < deadline) mosquitto_loop(c->mosq, 100, 1);
  if (c->pending_mid == mid) {
    fprintf(stderr, "no PUBACK for message %d\n", mid);
    exit(1);
  }
}

void sample_close(sample_connection *c) {
  if (c->mosq == NULL) return;
  mosquitto_disconnect(c->mosq);
  mosquitto_loop(c->mosq, 100, 1);
  mosquitto_destroy(c->mosq);
  c->mosq = NULL;
  if (--open_connections == 0) mosquitto_lib_cleanup();
}
