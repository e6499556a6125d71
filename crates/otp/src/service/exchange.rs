//! The token exchange: a code or a password for the member it belongs to, with
//! the guess limit, the uniform failure, and the member's reads batched with the
//! caller's.

use super::*;

impl OtpScheme {
    async fn guard_guesses(&self, profile_id: &ProfileId, username: &str) -> Result<(), OtpError> {
        let limit = self.config.limits.guesses_per_user;
        if limit.is_off() {
            return Ok(());
        }
        let mut batch = Batch::new();
        let guesses = batch.peek_count(self.key(profile_id, username, GUESSES));
        self.store.run(batch).await?;
        let Count { count, reset } = guesses.get()?;
        if count >= limit.count {
            return Err(OtpError::Throttled(Throttled { retry_after: reset }));
        }
        Ok(())
    }

    /// Counts a wrong guess against the username, once per distinct guess in the
    /// window (`guess` is a keyed digest): SDKs that resend a refused request
    /// spend one guess, not four.
    async fn wrong_guess(
        &self,
        profile_id: &ProfileId,
        username: &str,
        guess: String,
    ) -> Result<(), OtpError> {
        let limit = self.config.limits.guesses_per_user;
        if !limit.is_off() {
            let mut batch = Batch::new();
            let counted = batch.count_unless_seen(
                self.key(profile_id, username, GUESSES),
                self.key(profile_id, username, GUESSED),
                guess,
                limit.window,
            );
            self.store.run(batch).await?;
            counted.get()?;
        }
        Ok(())
    }

    /// The member behind an authenticated credential, read in one round trip
    /// together with what the caller's `along` queues (from the member's user
    /// id); what `along` returned (its handles) comes back with the member.
    async fn member<A>(
        &self,
        credential: Credential,
        along: impl FnOnce(&mut Batch, &UserId, &str) -> A,
    ) -> Result<(Member, A), OtpError> {
        let mut batch = Batch::new();
        let user = self.directory.user_in(&mut batch, &credential.user_id);
        let theirs = along(&mut batch, &credential.user_id, &credential.username);
        self.store.run(batch).await?;
        let user = user.get()?.ok_or(OtpError::Unauthorized)?;
        if !user.enabled {
            return Err(OtpError::Unauthorized);
        }
        Ok((Member { user, credential }, theirs))
    }

    /// The profile of an exchange (from this replica's one-second memory when it
    /// has it); an unknown one is just a failed authentication.
    async fn exchange_profile(
        &self,
        profile_id: &ProfileId,
    ) -> Result<Arc<PasswordProfile>, OtpError> {
        if let Some(p) = self.directory.recent_profile(profile_id) {
            return Ok(p);
        }
        match self.directory.profile(profile_id).await {
            Ok(p) => {
                let p = Arc::new(p);
                self.directory.remember_profile(p.clone());
                Ok(p)
            }
            Err(DirectoryError::NotFound(_)) => Err(OtpError::Unauthorized),
            Err(e) => Err(e.into()),
        }
    }

    /// What both exchanges start with: the profile, the canonical username and
    /// the presented secret as the caller parsed it (`None`: malformed, which
    /// fails as a wrong one does, before any guess is counted), once the
    /// username is within its guess limit.
    async fn exchange_start<S>(
        &self,
        profile_id: &ProfileId,
        username: &str,
        secret: Option<S>,
    ) -> Result<(Arc<PasswordProfile>, String, S), OtpError> {
        let profile = self.exchange_profile(profile_id).await?;
        let username = Self::username(&profile, username)?;
        let secret = secret.ok_or(OtpError::Unauthorized)?;
        self.guard_guesses(&profile.id, &username).await?;
        Ok((profile, username, secret))
    }

    /// Exchanges a code, once, for the member it was issued to. `along` queues
    /// work from the member's user id and username (reads, and the writes of a
    /// token the caller hands out only if the exchange succeeds) that shares
    /// the user record's round trip; what it returns (its handles) comes back
    /// with the member, and is dropped if the exchange fails after that trip.
    pub async fn exchange_code<A>(
        &self,
        profile_id: &ProfileId,
        username: &str,
        code: &str,
        along: impl FnOnce(&mut Batch, &UserId, &str) -> A,
    ) -> Result<(Member, A), OtpError> {
        self.counted(self.check_code(profile_id, username, code, along).await)
    }

    /// Two round trips when the code matches: the check (with the guess limit,
    /// and counting a wrong guess, in one script) together with the ids of the
    /// credential and its user; then both records with what `along` queues.
    async fn check_code<A>(
        &self,
        profile_id: &ProfileId,
        username: &str,
        code: &str,
        along: impl FnOnce(&mut Batch, &UserId, &str) -> A,
    ) -> Result<(Member, A), OtpError> {
        let profile = self.exchange_profile(profile_id).await?;
        let username = Self::username(&profile, username)?;
        let code = OneTimeCode::parse(code).map_err(|_| OtpError::Unauthorized)?;
        let digest = self.digest(&profile.id, &username, &code);
        let mut batch = Batch::new();
        let limit = self.config.limits.guesses_per_user;
        let keys = self.keys.user_keys(profile.id.as_str(), &username);
        let key = keys.key(CODE);
        let check = if limit.is_off() {
            batch.check_code(key, digest, self.config.max_tries)
        } else {
            batch.check_code_guarded(
                key,
                digest,
                self.config.max_tries,
                GuessLimit {
                    guesses: keys.key(GUESSES),
                    seen: keys.key(GUESSED),
                    limit: limit.count,
                    window: limit.window,
                },
            )
        };
        // The ids are read with the check, whatever its outcome: a matched code
        // then needs one more trip.
        let ids = self
            .directory
            .credential_ids_in(&mut batch, &profile.id, &username);
        self.store.run(batch).await?;
        match check.get()? {
            CodeCheck::Matched => {
                let (id, user_id) = ids.get()?.ok_or(OtpError::Unauthorized)?;
                let Some(user_id) = user_id else {
                    // Indexed before the user's id was kept with the credential's.
                    let mut batch = Batch::new();
                    let credential = self.directory.credential_in(&mut batch, &id);
                    self.store.run(batch).await?;
                    let credential = credential.get()?.ok_or(OtpError::Unauthorized)?;
                    return self.member(credential, along).await;
                };
                let mut batch = Batch::new();
                let credential = self.directory.credential_in(&mut batch, &id);
                let user = self.directory.user_in(&mut batch, &user_id);
                let theirs = along(&mut batch, &user_id, &username);
                self.store.run(batch).await?;
                let credential = credential.get()?.ok_or(OtpError::Unauthorized)?;
                let user = user.get()?.ok_or(OtpError::Unauthorized)?;
                if credential.user_id != user_id || !user.enabled {
                    return Err(OtpError::Unauthorized);
                }
                Ok((Member { user, credential }, theirs))
            }
            CodeCheck::Wrong { burnt } => {
                if burnt {
                    self.funnel.saw(Stage::Burnt);
                    tracing::info!(target: "authgate::audit", "one-time password token burnt after too many wrong tries");
                }
                Err(OtpError::Unauthorized)
            }
            // No live code: not a guess.
            CodeCheck::Missing => {
                self.funnel.saw(Stage::Expired);
                Err(OtpError::Unauthorized)
            }
            CodeCheck::Throttled { retry_after } => {
                Err(OtpError::Throttled(Throttled { retry_after }))
            }
        }
    }

    /// The failure of an exchange naming a password profile id that does not
    /// parse (the gateway finds that at its edge). Such an id names no profile,
    /// so the exchange fails as one naming an unknown profile does: unauthorized,
    /// and counted as a failed authentication.
    pub fn unknown_profile(&self) -> OtpError {
        self.counted::<()>(Err(OtpError::Unauthorized))
            .err()
            .unwrap_or(OtpError::Unauthorized)
    }

    /// Authenticates a member with their password; `along` as in
    /// [`OtpScheme::exchange_code`].
    pub async fn exchange_password<A>(
        &self,
        profile_id: &ProfileId,
        username: &str,
        secret: &str,
        along: impl FnOnce(&mut Batch, &UserId, &str) -> A,
    ) -> Result<(Member, A), OtpError> {
        self.counted(
            self.check_password(profile_id, username, secret, along)
                .await,
        )
    }

    async fn check_password<A>(
        &self,
        profile_id: &ProfileId,
        username: &str,
        secret: &str,
        along: impl FnOnce(&mut Batch, &UserId, &str) -> A,
    ) -> Result<(Member, A), OtpError> {
        let well_formed = !secret.is_empty() && secret.len() <= password::MAX_PASSWORD_LEN;
        let (profile, username, secret) = self
            .exchange_start(profile_id, username, well_formed.then_some(secret))
            .await?;
        let credential = self
            .directory
            .credential_by_username(&profile.id, &username)
            .await?;
        let phc = credential
            .as_ref()
            .and_then(|c| c.password_hash.clone())
            .unwrap_or_else(|| password::decoy().to_owned());
        let guess = hex::encode(self.keyring.mac(
            "wrong password",
            &[
                profile.id.as_str().as_bytes(),
                username.as_bytes(),
                secret.as_bytes(),
            ],
        ));
        let ok = password::verify_async(secret.to_owned(), phc).await;
        match credential {
            Some(c) if ok && c.password_hash.is_some() => self.member(c, along).await,
            _ => {
                self.wrong_guess(&profile.id, &username, guess).await?;
                Err(OtpError::Unauthorized)
            }
        }
    }
}
