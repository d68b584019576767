//! The one behaviour suite every store implementation must pass, so that the embedded
//! backend and the real ones are proven to behave the same: one `pub async fn` per case,
//! taking a [`UserStore`] or a [`SessionStore`] on a fresh database or table, which
//! `tests/stores.rs` runs on every backend through `test_support::conformance!`.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::date;
use uuid::Uuid;
use wire::api::auth::{AuditEntry, ContentFilter, Preferences};
use wire::api::matching::InterestMode;
use wire::domain::Gender;

use super::{
    Ban, ProfileUpdate, Rotation, Session, SessionStore, StoreError, TokenHash, User, UserStore,
    now,
};

/// The user store answers.
pub async fn the_user_store_answers(store: &dyn UserStore) {
    store.ping().await.expect("ping");
}

/// The session store answers.
pub async fn the_session_store_answers(store: &dyn SessionStore) {
    store.ping().await.expect("ping");
}

pub async fn bans_and_the_audit_log_read_back(store: &dyn UserStore) {
    let user = sample_user(&unique_username());
    store.create_user(&user).await.unwrap();
    assert_eq!(store.ban_of(user.id).await.unwrap(), None);
    let ban = Ban {
        at: now(),
        reason: "spam".to_owned(),
        by: Uuid::now_v7(),
    };
    assert!(store.set_ban(user.id, Some(&ban)).await.unwrap());
    assert_eq!(store.ban_of(user.id).await.unwrap(), Some(ban.clone()));
    assert!(store.set_ban(user.id, None).await.unwrap());
    assert_eq!(store.ban_of(user.id).await.unwrap(), None);
    assert!(!store.set_ban(Uuid::now_v7(), Some(&ban)).await.unwrap());
    assert_eq!(store.ban_of(Uuid::now_v7()).await.unwrap(), None);

    let entry = |action: &str| AuditEntry {
        id: Uuid::now_v7(),
        at: now(),
        operator_id: ban.by,
        action: action.to_owned(),
        target_id: user.id,
        detail: "spam".to_owned(),
    };
    let (first, second) = (entry("ban"), entry("unban"));
    store.record_audit(&first).await.unwrap();
    store.record_audit(&second).await.unwrap();
    let retried = AuditEntry {
        detail: "a retry with other words".to_owned(),
        ..first.clone()
    };
    store.record_audit(&retried).await.unwrap();
    assert_eq!(
        store.audit_log(10).await.unwrap(),
        vec![second.clone(), first],
        "newest first; a recorded id is kept as it was"
    );
    assert_eq!(store.audit_log(1).await.unwrap(), vec![second]);
}

/// A complete account named `username` (any valid user will do for a test).
pub fn sample_user(username: &str) -> User {
    let at = now();
    User {
        id: Uuid::now_v7(),
        username: username.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        display_name: "Sample User".to_owned(),
        gender: Gender::Female,
        birth_date: date!(1995 - 04 - 23),
        interests: vec!["rust".to_owned(), "jazz".to_owned()],
        preferences: Preferences {
            genders: vec![Gender::Male, Gender::Other],
            min_age: 21,
            max_age: 35,
            interests: vec!["rust".to_owned()],
            interest_mode: InterestMode::Required,
            age_widen_years: 3,
            widen_every_secs: 20,
            fallback_after_secs: Some(60),
        },
        content_filter: ContentFilter::Strict,
        created_at: at,
        updated_at: at,
    }
}

fn unique_username() -> String {
    format!("u_{}", &Uuid::new_v4().simple().to_string()[..20])
}

pub async fn a_created_user_reads_back_by_id_and_username(store: &dyn UserStore) {
    let user = sample_user(&unique_username());
    store.create_user(&user).await.expect("create");
    assert_eq!(
        store.user_by_id(user.id).await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(
        store
            .user_by_username(&user.username)
            .await
            .unwrap()
            .as_ref(),
        Some(&user)
    );
}

pub async fn a_taken_username_is_refused(store: &dyn UserStore) {
    let first = sample_user(&unique_username());
    store.create_user(&first).await.expect("create");
    let second = sample_user(&first.username);
    let err = store
        .create_user(&second)
        .await
        .expect_err("a second account with the same name");
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
    assert_eq!(store.user_by_id(second.id).await.unwrap(), None);
}

pub async fn unknown_users_are_none(store: &dyn UserStore) {
    assert_eq!(store.user_by_id(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store.user_by_username(&unique_username()).await.unwrap(),
        None
    );
    let update = ProfileUpdate {
        display_name: Some("x".to_owned()),
        ..ProfileUpdate::default()
    };
    assert_eq!(
        store
            .update_profile(Uuid::new_v4(), &update, now())
            .await
            .unwrap(),
        None
    );
}

pub async fn a_profile_update_changes_only_given_fields(store: &dyn UserStore) {
    let user = sample_user(&unique_username());
    store.create_user(&user).await.expect("create");
    let later = now() + Duration::from_secs(1);
    let update = ProfileUpdate {
        display_name: Some("New Name".to_owned()),
        interests: Some(vec!["chess".to_owned()]),
        content_filter: Some(ContentFilter::Off),
        ..ProfileUpdate::default()
    };
    let updated = store
        .update_profile(user.id, &update, later)
        .await
        .unwrap()
        .expect("the user exists");
    let expected = User {
        display_name: "New Name".to_owned(),
        interests: vec!["chess".to_owned()],
        content_filter: ContentFilter::Off,
        updated_at: later,
        ..user.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(
        store.user_by_id(user.id).await.unwrap(),
        Some(expected.clone())
    );

    let update = ProfileUpdate {
        gender: Some(Gender::Other),
        birth_date: Some(date!(1990 - 01 - 02)),
        ..ProfileUpdate::default()
    };
    let updated = store
        .update_profile(user.id, &update, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.gender, Gender::Other);
    assert_eq!(updated.birth_date, date!(1990 - 01 - 02));
    assert_eq!(updated.display_name, "New Name");
}

pub async fn preferences_and_password_hash_are_replaced(store: &dyn UserStore) {
    let user = sample_user(&unique_username());
    store.create_user(&user).await.expect("create");
    let preferences = Preferences {
        genders: vec![],
        min_age: 18,
        max_age: 120,
        interests: vec![],
        interest_mode: InterestMode::Ignored,
        age_widen_years: 0,
        widen_every_secs: 5,
        fallback_after_secs: None,
    };
    assert!(
        store
            .set_preferences(user.id, &preferences, now())
            .await
            .unwrap()
    );
    assert!(
        store
            .set_password_hash(user.id, "$argon2id$new", now())
            .await
            .unwrap()
    );
    let stored = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.preferences, preferences);
    assert_eq!(stored.password_hash, "$argon2id$new");
    assert_eq!(
        stored.interests, user.interests,
        "profile interests are separate"
    );
    assert!(
        !store
            .set_preferences(Uuid::new_v4(), &preferences, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_password_hash(Uuid::new_v4(), "x", now())
            .await
            .unwrap()
    );
}

fn random_hash() -> TokenHash {
    crate::refresh::RefreshToken::generate().hash
}

/// A rotation of `session`'s current token at `at` (with a random seal: the store keeps
/// it, it never opens it).
fn rotation_of(session: &Session, at: OffsetDateTime) -> Rotation {
    let mut sealed_successor = [0u8; 32];
    rand::fill(&mut sealed_successor);
    Rotation {
        replaced: session.current_hash,
        at,
        sealed_successor,
    }
}

const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 3600);

async fn new_session(store: &dyn SessionStore, user_id: Uuid, at: OffsetDateTime) -> Session {
    let session = Session::begin(user_id, random_hash(), at, THIRTY_DAYS);
    store
        .create_session(&session)
        .await
        .expect("create session");
    session
}

pub async fn a_created_session_is_found_by_its_token(store: &dyn SessionStore) {
    let session = new_session(store, Uuid::new_v4(), now()).await;
    assert_eq!(
        store.session(session.id).await.unwrap().as_ref(),
        Some(&session)
    );
    let found = store
        .find_by_token(&session.current_hash)
        .await
        .unwrap()
        .expect("found");
    assert!(found.is_current);
    assert_eq!(found.session, session);
    assert_eq!(store.find_by_token(&random_hash()).await.unwrap(), None);
    assert_eq!(store.session(Uuid::new_v4()).await.unwrap(), None);
}

pub async fn a_rotation_makes_the_old_token_non_current(store: &dyn SessionStore) {
    let session = new_session(store, Uuid::new_v4(), now()).await;
    let next = random_hash();
    let later = now() + Duration::from_secs(5);
    let rotation = rotation_of(&session, later);
    assert!(store.rotate(&session, &next, &rotation).await.unwrap());

    let old = store
        .find_by_token(&session.current_hash)
        .await
        .unwrap()
        .expect("old token known");
    assert!(!old.is_current, "the rotated token is no longer current");
    assert_eq!(old.session.id, session.id);
    let new = store
        .find_by_token(&next)
        .await
        .unwrap()
        .expect("new token known");
    assert!(new.is_current);
    assert_eq!(new.session.last_used_at, later);
    assert_eq!(
        new.session.last_rotation,
        Some(rotation),
        "the rotation is kept for the grace window"
    );
    assert_eq!(old.session.last_rotation, new.session.last_rotation);
    assert_eq!(
        new.session.expires_at, session.expires_at,
        "rotation keeps the absolute end"
    );

    // The session as read before the rotation is stale: its token is not current.
    assert!(
        !store
            .rotate(&session, &random_hash(), &rotation_of(&session, later))
            .await
            .unwrap()
    );
}

pub async fn of_two_concurrent_rotations_exactly_one_wins(store: &dyn SessionStore) {
    for _ in 0..10 {
        let session = new_session(store, Uuid::new_v4(), now()).await;
        let (a, b) = (random_hash(), random_hash());
        let at = now();
        let (first, second) = (rotation_of(&session, at), rotation_of(&session, at));
        let (ra, rb) = tokio::join!(
            store.rotate(&session, &a, &first),
            store.rotate(&session, &b, &second)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra ^ rb, "exactly one rotation must win, got {ra} and {rb}");
        let winner = if ra { a } else { b };
        let current = store.session(session.id).await.unwrap().unwrap();
        assert_eq!(current.current_hash, winner);
    }
}

pub async fn a_revoked_session_cannot_rotate_and_is_not_listed(store: &dyn SessionStore) {
    let user = Uuid::new_v4();
    let session = new_session(store, user, now()).await;
    assert!(
        !store
            .revoke(Uuid::new_v4(), session.id, now())
            .await
            .unwrap(),
        "another user's session"
    );
    assert!(store.revoke(user, session.id, now()).await.unwrap());
    assert!(
        !store.revoke(user, session.id, now()).await.unwrap(),
        "already ended"
    );
    assert!(
        !store
            .rotate(&session, &random_hash(), &rotation_of(&session, now()))
            .await
            .unwrap()
    );
    let stored = store.session(session.id).await.unwrap().unwrap();
    assert!(stored.revoked_at.is_some());
    assert!(!stored.is_active(now()));
    assert!(store.active_sessions(user, now()).await.unwrap().is_empty());
    assert!(
        !store.revoke(user, Uuid::new_v4(), now()).await.unwrap(),
        "unknown session"
    );
}

pub async fn revoking_all_keeps_the_given_session_and_other_users(store: &dyn SessionStore) {
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let start = now();
    let first = new_session(store, user, start).await;
    let second = new_session(store, user, start + Duration::from_millis(1)).await;
    let third = new_session(store, user, start + Duration::from_millis(2)).await;
    let others = new_session(store, other, start).await;
    let listed: Vec<Uuid> = store
        .active_sessions(user, now())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![first.id, second.id, third.id], "oldest first");

    let mut ended = store
        .revoke_all(user, Some(second.id), now())
        .await
        .unwrap();
    ended.sort();
    let mut expected = vec![first.id, third.id];
    expected.sort();
    assert_eq!(ended, expected, "the ids of the sessions it ended");
    let listed: Vec<Uuid> = store
        .active_sessions(user, now())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![second.id]);
    assert!(
        !store
            .rotate(&first, &random_hash(), &rotation_of(&first, now()))
            .await
            .unwrap()
    );
    assert!(
        store
            .rotate(&second, &random_hash(), &rotation_of(&second, now()))
            .await
            .unwrap()
    );
    assert_eq!(
        store.active_sessions(other, now()).await.unwrap(),
        vec![others]
    );

    assert_eq!(
        store.revoke_all(user, None, now()).await.unwrap(),
        vec![second.id]
    );
    assert!(store.active_sessions(user, now()).await.unwrap().is_empty());

    // A log in after it is not touched by it.
    let later = new_session(store, user, now() + Duration::from_secs(1)).await;
    let listed: Vec<Uuid> = store
        .active_sessions(user, now())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![later.id]);
    assert!(
        store
            .rotate(&later, &random_hash(), &rotation_of(&later, now()))
            .await
            .unwrap()
    );
}

pub async fn an_expired_session_is_inactive(store: &dyn SessionStore) {
    let user = Uuid::new_v4();
    let long_ago = now() - THIRTY_DAYS - Duration::from_secs(60);
    let session = new_session(store, user, long_ago).await;
    assert!(
        !store
            .rotate(&session, &random_hash(), &rotation_of(&session, now()))
            .await
            .unwrap()
    );
    assert!(!store.revoke(user, session.id, now()).await.unwrap());
    assert!(store.active_sessions(user, now()).await.unwrap().is_empty());
    let found = store.find_by_token(&session.current_hash).await.unwrap();
    assert!(found.is_none_or(|f| !f.session.is_active(now())));
    let purged = store.purge_expired(now()).await.unwrap();
    if purged > 0 {
        assert_eq!(store.session(session.id).await.unwrap(), None);
        assert_eq!(
            store.find_by_token(&session.current_hash).await.unwrap(),
            None
        );
    }
}
