//! `authgate serve --demo`: the documentation's example users, ready to log in.
//!
//! The demo's email integration names no page of its own, so its links open the
//! gateway's hosted pages (`/ui/sign-in/confirm`, `/ui/reset-password`), and
//! members may reset their own password there (`account_member_self_management`
//! is `update_only`): the emailed code works end to end with nothing else running.

use authgate_core::directory::{DirectoryError, SelfManagement, UsernameFormat};
use authgate_core::integrations::{IntegrationInput, IntegrationType};

use crate::state::AppState;

/// The web phone application of the demo.
pub const APPLICATION: &str = "myapp.myaccount";
/// The demo's web phone user.
pub const USER: &str = "myuser";
/// That user's password.
pub const PASSWORD: &str = "mypass123";
/// The demo's customer (one-time password profile).
pub const CUSTOMER: &str = "john.doe@banks.com";

/// Seeds the demo data unless it is already there (replicas may all run `--demo`).
pub async fn seed(state: &AppState) -> Result<(), DirectoryError> {
    let dir = &state.directory;
    if dir.profile_for_application(APPLICATION).await?.is_some() {
        tracing::info!("demo data already present");
        return Ok(());
    }
    let phones = dir
        .create_profile(
            "Web phone users",
            UsernameFormat::Any,
            false,
            Some(APPLICATION),
        )
        .await?;
    let me = dir
        .create_user("My User", Some("myuser@example.com"))
        .await?;
    dir.create_credential(&me.id, &phones.id, USER, Some(PASSWORD))
        .await?;

    let customers = dir
        .create_profile("Customers", UsernameFormat::Email, true, None)
        .await?;
    let john = dir.create_user("John Doe", Some(CUSTOMER)).await?;
    state
        .integrations
        .create(IntegrationInput {
            name: Some("Demo email".to_owned()),
            description: Some(
                "Sends codes by email (to the log unless AUTHGATE_SMTP_URL is set), linking to \
                 the gateway's own pages under /ui/"
                    .to_owned(),
            ),
            integration_type: Some(IntegrationType::Email),
            ..IntegrationInput::default()
        })
        .await?;
    dir.create_credential(&john.id, &customers.id, CUSTOMER, Some(PASSWORD))
        .await?;
    // The hosted reset page, like the API's member PUT, needs members to be
    // allowed to change their own password.
    dir.update_settings(Some(SelfManagement::UpdateOnly), None)
        .await?;
    tracing::info!(
        realm = dir.realm_id().as_str(),
        web_phone_user = %format!("{USER}@{APPLICATION}.voximplant.com"),
        customer = CUSTOMER,
        "demo data seeded (both users' password: {PASSWORD})"
    );
    Ok(())
}
