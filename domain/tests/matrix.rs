//! The whole matrix: every command × every state (and none) × every role, party and
//! non-party. Expectations are written here from DOMAIN.md's tables, independently of the
//! tables in `decide`; a command is accepted exactly where the policy book allows it and is
//! otherwise refused with the named reason.

mod support;

use chrono::Duration;
use ledger_domain::*;
use support::*;
use CommandKind::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Buyer,
    OtherBuyer,
    Seller,
    OtherSeller,
    Mediator,
    Finance,
    System,
}

const EVERYONE: [Who; 7] = [
    Who::Buyer,
    Who::OtherBuyer,
    Who::Seller,
    Who::OtherSeller,
    Who::Mediator,
    Who::Finance,
    Who::System,
];

impl Who {
    fn actor(self) -> Actor {
        match self {
            Who::Buyer => buyer(),
            Who::OtherBuyer => Actor::new(Role::Buyer, OTHER_BUYER),
            Who::Seller => seller(),
            Who::OtherSeller => Actor::new(Role::Seller, OTHER_SELLER),
            Who::Mediator => mediator(),
            Who::Finance => finance(),
            Who::System => system(),
        }
    }
}

/// "Who acts", DOMAIN.md.
fn may_send(kind: CommandKind, role: Role) -> bool {
    let buyer = [
        Place,
        Cancel,
        RequestRevision,
        BuyExtra,
        ExtendDeadline,
        Close,
        OpenDispute,
        RequestCancellation,
        AgreeCancellation,
        WithdrawCancellation,
        LeaveReview,
    ];
    let seller = [
        Confirm,
        Decline,
        Deliver,
        AcceptRevision,
        RefuseRevision,
        Cancel,
        PartialRefund,
        OpenDispute,
        RequestCancellation,
        AgreeCancellation,
        WithdrawCancellation,
    ];
    match role {
        Role::Buyer => buyer.contains(&kind),
        Role::Seller => seller.contains(&kind),
        Role::Mediator => kind == ResolveDispute,
        Role::System => matches!(kind, Expire | AutoClose),
        Role::Finance => false,
    }
}

/// "Commands and their rules", DOMAIN.md: the states each command starts from.
fn starts_from(kind: CommandKind, role: Role) -> Vec<Status> {
    use Status::*;
    let work = vec![InProgress, Delivered, RevisionRequested, RevisionRefused];
    match kind {
        Place => vec![],
        Confirm | Decline | Expire => vec![Placed],
        Deliver | ExtendDeadline => vec![InProgress],
        RequestRevision => vec![Delivered],
        AcceptRevision | RefuseRevision => vec![RevisionRequested],
        Close | AutoClose => vec![Delivered, RevisionRefused],
        Cancel if role == Role::Buyer => vec![Placed, InProgress],
        Cancel | BuyExtra | RequestCancellation | AgreeCancellation | WithdrawCancellation
        | PartialRefund | OpenDispute => work,
        ResolveDispute => vec![InDispute],
        LeaveReview => vec![Closed],
    }
}

/// Whether `who` may send `kind` to an order in `status` (None: not yet placed).
/// Agreeing needs the *other* party's request; the matrix sets up a buyer's one.
fn expected(kind: CommandKind, status: Option<Status>, who: Who) -> Result<(), &'static str> {
    let role = who.actor().role;
    if !may_send(kind, role) {
        return Err("role_not_allowed");
    }
    let Some(status) = status else {
        return if kind == Place {
            Ok(())
        } else {
            Err("order_not_found")
        };
    };
    if kind == Place {
        return Err("already_placed");
    }
    if matches!(who, Who::OtherBuyer | Who::OtherSeller) {
        return Err("not_a_party");
    }
    if status == Status::InDispute && kind != ResolveDispute {
        return Err("order_in_dispute");
    }
    if status.is_terminal() && !(kind == LeaveReview && status == Status::Closed) {
        return Err("order_finished");
    }
    if !starts_from(kind, role).contains(&status) {
        return Err("wrong_state");
    }
    match (kind, who) {
        (AgreeCancellation, Who::Buyer) => Err("cannot_agree_to_own_request"),
        (WithdrawCancellation, Who::Seller) => Err("not_the_requester"),
        (RequestCancellation, _) => Err("cancellation_already_requested"),
        _ => Ok(()),
    }
}

/// The instant each command is sent: late enough for timers and for a late buyer's cancel,
/// early enough for everything else to be inside its window.
fn when(kind: CommandKind) -> chrono::DateTime<chrono::Utc> {
    match kind {
        Expire | AutoClose | Cancel => days(60),
        _ => days(4),
    }
}

fn given(status: Option<Status>) -> Vec<Command> {
    let mut steps = path_to(status);
    if status.is_some_and(|s| ACTIVE_STATES.contains(&s)) {
        steps.push(sample(
            RequestCancellation,
            buyer(),
            days(3) + Duration::hours(12),
        ));
    }
    steps
}

#[test]
fn every_command_in_every_state_by_every_role_is_accepted_exactly_where_domain_md_allows() {
    let states: Vec<Option<Status>> = std::iter::once(None)
        .chain(Status::ALL.into_iter().map(Some))
        .collect();
    let mut cases = 0;
    let mut accepted = 0;
    for status in states.iter().copied() {
        let test = OrderTest::given_commands(given(status));
        for kind in CommandKind::ALL {
            for who in EVERYONE {
                let command = sample(kind, who.actor(), when(kind));
                let result = decide(test.state(), &command, &Policy::default());
                let want = expected(kind, status, who);
                match (&result, want) {
                    (Ok(events), Ok(())) => {
                        assert!(
                            !events.is_empty(),
                            "{kind:?} by {who:?} in {status:?}: no events"
                        );
                        accepted += 1;
                    }
                    (Err(rejection), Err(code)) => assert_eq!(
                        rejection.code(),
                        code,
                        "{kind:?} by {who:?} in {status:?}: {rejection}"
                    ),
                    (got, want) => {
                        panic!("{kind:?} by {who:?} in {status:?}: got {got:?}, want {want:?}")
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 9 * 20 * 7);
    // A matrix where nothing is accepted would pass vacuously.
    assert!(accepted > 40, "only {accepted} accepted cases");
}
