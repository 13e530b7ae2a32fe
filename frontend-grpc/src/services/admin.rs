//! Admin: the operator's actions, authenticated by an operator token.

use carewatch_core::Carewatch;
use carewatch_core::audit::as_operator;
use carewatch_core::ids::ResellerId;
use carewatch_core::installation::Product;
use carewatch_core::seal::KeyId;
use carewatch_core::team::{Login, Role};
use tonic::{Request, Response, Status};

use crate::auth::bearer;
use crate::convert;
use crate::proto::admin_server::Admin;
use crate::proto::{self};
use crate::status::to_status;

/// Serves [`Admin`].
#[derive(Debug, Clone)]
pub struct AdminService {
    carewatch: Carewatch,
}

impl AdminService {
    /// Over a Carewatch service.
    pub fn new(carewatch: Carewatch) -> Self {
        Self { carewatch }
    }

    /// The operator calling: what it does is recorded as its (the audit
    /// log's actor) when run under [`as_operator`].
    async fn operator<T>(&self, request: &Request<T>) -> Result<ResellerId, Status> {
        let token = bearer(request).map_err(to_status)?;
        self.carewatch
            .authenticate_operator(token, request.remote_addr().map(|a| a.ip()))
            .await
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn invite_user(
        &self,
        request: Request<proto::InviteUserRequest>,
    ) -> Result<Response<proto::Invitation>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let reseller = convert::reseller_id(&r.reseller_id).map_err(to_status)?;
        let login = Login::new(&r.login).map_err(to_status)?;
        let role = Role::parse(&r.role).map_err(to_status)?;
        let invitation = as_operator(
            operator,
            self.carewatch
                .invite_user(&reseller, &login, &r.name, role, None),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(proto::Invitation {
            secret: invitation.secret.token.to_string(),
            expires_at: Some(convert::timestamp(invitation.expires_at)),
        }))
    }

    async fn create_reseller(
        &self,
        request: Request<proto::CreateResellerRequest>,
    ) -> Result<Response<proto::TokenResponse>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let id = convert::reseller_id(&r.id).map_err(to_status)?;
        let issued = as_operator(operator, self.carewatch.create_reseller(&id, &r.name))
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::TokenResponse {
            token: issued.token.to_string(),
        }))
    }

    async fn rotate_reseller_token(
        &self,
        request: Request<proto::RotateResellerTokenRequest>,
    ) -> Result<Response<proto::TokenResponse>, Status> {
        let operator = self.operator(&request).await?;
        let id = convert::reseller_id(&request.get_ref().id).map_err(to_status)?;
        let issued = as_operator(operator, self.carewatch.rotate_reseller_token(&id))
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::TokenResponse {
            token: issued.token.to_string(),
        }))
    }

    async fn list_audit_log(
        &self,
        request: Request<proto::ListAuditLogRequest>,
    ) -> Result<Response<proto::ListAuditLogResponse>, Status> {
        self.operator(&request).await?;
        let r = request.into_inner();
        let team = (!r.team_reseller_id.is_empty())
            .then(|| convert::reseller_id(&r.team_reseller_id))
            .transpose()
            .map_err(to_status)?;
        let limit = if r.limit == 0 { 100 } else { r.limit };
        let entries = self
            .carewatch
            .audit_log(
                team.as_ref(),
                (r.before_id > 0).then_some(r.before_id),
                limit,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ListAuditLogResponse {
            entries: entries.iter().map(convert::audit_entry).collect(),
        }))
    }

    async fn get_installation_history(
        &self,
        request: Request<proto::GetInstallationHistoryRequest>,
    ) -> Result<Response<proto::InstallationHistory>, Status> {
        self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        let limit = if r.limit == 0 { 100 } else { r.limit };
        let events = self
            .carewatch
            .full_history(&slc, limit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::InstallationHistory {
            events: events.iter().map(convert::history).collect(),
        }))
    }

    async fn list_resellers(
        &self,
        request: Request<proto::ListResellersRequest>,
    ) -> Result<Response<proto::ListResellersResponse>, Status> {
        self.operator(&request).await?;
        let resellers = self.carewatch.resellers().await.map_err(to_status)?;
        Ok(Response::new(proto::ListResellersResponse {
            resellers: resellers
                .iter()
                .map(|r| proto::Reseller {
                    id: r.id.to_string(),
                    name: r.name.clone(),
                    created_at: Some(convert::timestamp(r.created_at)),
                })
                .collect(),
        }))
    }

    async fn register_installation(
        &self,
        request: Request<proto::RegisterInstallationRequest>,
    ) -> Result<Response<proto::InstallationInfo>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        let reseller = convert::reseller_id(&r.reseller_id).map_err(to_status)?;
        let product = Product::new(&r.product, &r.product_version).map_err(to_status)?;
        let installation = as_operator(
            operator,
            self.carewatch
                .register_installation(&slc, &reseller, product),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(convert::installation_info(&installation)))
    }

    async fn set_subscription(
        &self,
        request: Request<proto::SetSubscriptionRequest>,
    ) -> Result<Response<proto::InstallationInfo>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        let until = r
            .expires_at
            .as_ref()
            .map(|t| convert::from_timestamp("expires_at", t))
            .transpose()
            .map_err(to_status)?;
        let installation = as_operator(operator, self.carewatch.set_subscription(&slc, until))
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::installation_info(&installation)))
    }

    async fn set_consent(
        &self,
        request: Request<proto::SetConsentRequest>,
    ) -> Result<Response<proto::InstallationInfo>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        let installation = as_operator(operator, self.carewatch.set_consent(&slc, r.accepted))
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::installation_info(&installation)))
    }

    async fn transfer_installation(
        &self,
        request: Request<proto::TransferInstallationRequest>,
    ) -> Result<Response<proto::InstallationInfo>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        let to = convert::reseller_id(&r.to_reseller_id).map_err(to_status)?;
        let installation = as_operator(
            operator,
            self.carewatch
                .transfer_installation(&slc, &to, r.share_history),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(convert::installation_info(&installation)))
    }

    async fn issue_installation_key(
        &self,
        request: Request<proto::IssueInstallationKeyRequest>,
    ) -> Result<Response<proto::InstallationKey>, Status> {
        let operator = self.operator(&request).await?;
        let slc = convert::slc(&request.get_ref().slc).map_err(to_status)?;
        let key = as_operator(operator, self.carewatch.issue_installation_key(&slc))
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::InstallationKey {
            key_id: key.id().get(),
            key: key.to_text().to_string(),
        }))
    }

    async fn retire_installation_key(
        &self,
        request: Request<proto::RetireInstallationKeyRequest>,
    ) -> Result<Response<proto::RetireInstallationKeyResponse>, Status> {
        let operator = self.operator(&request).await?;
        let r = request.into_inner();
        let slc = convert::slc(&r.slc).map_err(to_status)?;
        as_operator(
            operator,
            self.carewatch
                .retire_installation_key(&slc, KeyId::new(r.key_id)),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(proto::RetireInstallationKeyResponse {}))
    }

    async fn reseal_secrets(
        &self,
        request: Request<proto::ResealSecretsRequest>,
    ) -> Result<Response<proto::ResealSecretsResponse>, Status> {
        let operator = self.operator(&request).await?;
        let expected = &request.get_ref().expected_current_key;
        let expected = (!expected.is_empty()).then_some(expected.as_str());
        let report = as_operator(operator, self.carewatch.reseal_secrets(expected))
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::ResealSecretsResponse {
            keys_resealed: report.keys_resealed,
            keys_current: report.keys_current,
            channels_resealed: report.channels_resealed,
            channels_current: report.channels_current,
            changed_meanwhile: report.changed_meanwhile,
            unopenable: report.unopenable,
            unopenable_named: report.unopenable_named,
            previous_keys: report.previous_keys,
            current_key: report.current_key,
        }))
    }
}
