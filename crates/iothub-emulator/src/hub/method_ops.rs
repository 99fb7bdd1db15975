//! Direct methods as the service side calls them: on a registered identity only.

use super::Hub;
use super::auth::Identity;
use super::handle::HubError;
use super::methods::{MethodCall, MethodResult};

impl Hub {
    /// [`Hub::invoke_method`] on an identity that must be in the registry: an unknown
    /// identity is refused at once instead of waiting out the connect timeout.
    ///
    /// # Errors
    /// [`HubError::NotFound`], [`HubError::Method`] (not online within the connect timeout,
    /// no answer within the response timeout) or [`HubError::Store`].
    pub async fn call_registered_method(
        &self,
        identity: &Identity,
        call: MethodCall,
    ) -> Result<MethodResult, HubError> {
        self.registered(identity).await?;
        Ok(self.invoke_method(identity, call).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hub::methods::MethodError;
    use crate::hub::registry_ops::IdentityChange;
    use crate::store::Store;

    #[tokio::test]
    async fn an_unknown_identity_is_refused_before_the_device_is_waited_for() {
        let hub = Hub::new(Store::open_in_memory().unwrap(), vec!["localhost".into()]);
        let who = Identity {
            device_id: "d1".into(),
            module_id: None,
        };
        let call = || {
            MethodCall::new(
                "reboot",
                b"null".to_vec(),
                Duration::from_secs(5),
                Duration::ZERO,
            )
            .unwrap()
        };
        let unknown = hub.call_registered_method(&who, call()).await.unwrap_err();
        assert!(matches!(unknown, HubError::NotFound(w) if w == who));
        hub.put_identity(&who, IdentityChange::default(), None)
            .await
            .unwrap();
        let offline = hub.call_registered_method(&who, call()).await.unwrap_err();
        assert!(matches!(
            offline,
            HubError::Method(MethodError::DeviceNotOnline)
        ));
    }
}
