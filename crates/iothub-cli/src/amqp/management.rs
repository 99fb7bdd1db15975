//! The Event Hub's `$management` node (docs/amqp.md "Event Hub metadata (`$management`)"): a
//! READ of `com.microsoft:eventhub` answers the partition ids.

use anyhow::{Context, bail};
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Message};
use fe2o3_amqp::types::primitives::{Symbol, Value};

/// The READ request for the Event Hub `name`.
pub(crate) fn read_event_hub(name: &str) -> Message<AmqpValue<Value>> {
    let properties = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("type", "com.microsoft:eventhub")
        .insert("name", name.to_owned())
        .build();
    Message::builder()
        .application_properties(properties)
        .value(Value::Null)
        .build()
}

/// The `partition_ids` of a READ reply (an array or list of strings).
pub(crate) fn partition_ids(reply: &Message<Body<Value>>) -> anyhow::Result<Vec<String>> {
    let Body::Value(value) = &reply.body else {
        bail!("the $management reply has no amqp-value body");
    };
    let Value::Map(map) = &value.0 else {
        bail!("the $management reply is not a map");
    };
    let ids = map
        .get(&Value::String("partition_ids".into()))
        .or_else(|| map.get(&Value::Symbol(Symbol::from("partition_ids"))))
        .context("the $management reply has no partition_ids")?;
    let items: &[Value] = match ids {
        Value::Array(a) => &a.0,
        Value::List(l) => l,
        other => bail!("partition_ids is not a list: {other:?}"),
    };
    let ids = items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Symbol(s) => Ok(s.as_str().to_owned()),
            other => bail!("a partition id is not a string: {other:?}"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("the Event Hub has no partitions");
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use serde_amqp::primitives::{Array, OrderedMap};

    use super::*;

    fn reply(ids: Value) -> Message<Body<Value>> {
        let mut map = OrderedMap::new();
        map.insert(Value::String("name".into()), Value::String("hub".into()));
        map.insert(Value::String("partition_ids".into()), ids);
        Message::builder()
            .body(Body::Value(AmqpValue(Value::Map(map))))
            .build()
    }

    #[test]
    fn reads_partition_ids_from_arrays_and_lists() {
        let array = Value::Array(Array::from(vec![
            Value::String("0".into()),
            Value::String("1".into()),
        ]));
        assert_eq!(partition_ids(&reply(array)).unwrap(), ["0", "1"]);
        let list = Value::List(vec![Value::String("0".into())]);
        assert_eq!(partition_ids(&reply(list)).unwrap(), ["0"]);
        assert!(partition_ids(&reply(Value::List(vec![]))).is_err());
        assert!(partition_ids(&reply(Value::Int(4))).is_err());
    }

    #[test]
    fn the_request_names_operation_type_and_entity() {
        let m = read_event_hub("hub");
        let p = m.application_properties.unwrap().0;
        assert_eq!(p.len(), 3);
        assert!(p.contains_key("operation") && p.contains_key("type") && p.contains_key("name"));
    }
}
