/* Shared plumbing of the C samples: environment, clock, and one MQTT-over-TLS connection
 * (libmosquitto, MQTT 3.1.1) whose SAS password iothub.h signs and renews before expiry. */
#ifndef SAMPLE_COMMON_H
#define SAMPLE_COMMON_H

#include <mosquitto.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iothub.h"

/* Message handler: topic (NUL-terminated) and payload. */
typedef void (*sample_message_fn)(void *context, const char *topic, const void *payload, size_t payload_len);

typedef struct sample_connection {
  struct mosquitto *mosq;
  iothub_client client;
  const char *dial_host; /* NUL-terminated copy in host_buf */
  int port;
  const char *ca_file;
  /* Credentials: a device key to sign with, or a fixed SAS token. */
  iothub_span key;
  iothub_span policy;
  iothub_span fixed_token;
  uint32_t token_ttl_secs;
  uint64_t token_expiry;
  bool connected;
  int connack;
  int pending_mid;     /* a QoS 1 publish waiting for PUBACK, or -1 */
  sample_message_fn on_message;
  void *context;
  const char *const *filters; /* subscribed after every (re)connect */
  size_t filter_count;
  int subscribed;      /* SUBACKs received since the last connect */
  char host_buf[256];
  char client_id[256];
  char username[512];
  char password[512];
} sample_connection;

/* Milliseconds of a monotonic clock, and Unix seconds. */
uint64_t sample_now_ms(void);
uint64_t sample_unix_secs(void);

/* getenv() that prints a message and exits when a required variable is missing. */
const char *sample_env(const char *name, const char *fallback);

/* Prints `what` failed with the result's name and exits 1 unless rc is IOTHUB_OK. */
void sample_check(iothub_result rc, const char *what);

/* Prepares a connection from a device connection string (kept; must outlive the connection). */
void sample_connection_init(sample_connection *c, const char *connection_string, const char *model_id);
/* Prepares a connection for an already initialised client and a device key. */
void sample_connection_init_client(sample_connection *c, const char *key);

/* Connects (signing a fresh token) and subscribes to the filters; exits on failure. */
void sample_connect(sample_connection *c);
/* Runs the network for up to timeout_ms; reconnects with a new token when it is about to expire. */
void sample_run(sample_connection *c, int timeout_ms);
/* Runs the network until *flag becomes true or timeout_ms passes; returns *flag. */
bool sample_run_until(sample_connection *c, const volatile bool *flag, int timeout_ms);
/* Publishes at QoS 1 and waits for the PUBACK (exits after 30 s without one). */
void sample_publish(sample_connection *c, const char *topic, const void *payload, size_t len);
/* Disconnects and frees libmosquitto's state. */
void sample_close(sample_connection *c);

#endif
