//! Table tests for [`decide`]: every rule, the safety limits and the order.

use super::*;

fn settings() -> Settings {
    let mut s = Settings::default();
    s.fill_defaults(Language::Es);
    s
}

fn company() -> Company {
    Company {
        name: "Red Sur".into(),
        language: Language::Es,
    }
}

fn ana() -> Customer {
    Customer {
        id: Some(7),
        code: "A-17".into(),
        name: "Ana Pérez".into(),
        phones: vec!["+5491123456789".into()],
        balance: Some(Money(123450)),
        ..Default::default()
    }
}

/// What a decision comes to, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
enum Did {
    Reply(String),
    OptOut(bool),
    Ticket { text: String, reply: Option<String> },
    Outage(i64),
}

fn did(d: &Decision) -> Vec<Did> {
    d.actions
        .iter()
        .map(|a| match a {
            Action::Reply(t) => Did::Reply(t.clone()),
            Action::SetOptOut(b) => Did::OptOut(*b),
            Action::OpenTicket(t) => Did::Ticket {
                text: t.text.clone(),
                reply: t.reply.as_ref().map(|(tpl, vars)| {
                    let mut v = vars.clone();
                    v.set("id", "42");
                    template::render(tpl, &v)
                }),
            },
            Action::LinkOutage(id) => Did::Outage(*id),
        })
        .collect()
}

struct Case {
    name: &'static str,
    peer: &'static str,
    body: &'static str,
    known: bool,
    replies: u32,
    tickets: u32,
    rule: Rule,
    expect: Vec<Did>,
}

const BALANCE: &str = "Estimado Ana Pérez, su saldo pendiente de pago es $ 1.234,50. Gracias por comunicarse con Red Sur.";
const PEER: &str = "+5491123456789";

fn reply(s: &str) -> Did {
    Did::Reply(s.to_string())
}

#[test]
fn decide_table() {
    let ticket_reply =
        "Red Sur: registramos su reclamo con el número 42. Un técnico se comunicará a la brevedad.";
    let cases = vec![
        Case {
            name: "balance keyword, known customer",
            peer: PEER,
            body: "saldo",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Balance,
            expect: vec![reply(BALANCE)],
        },
        Case {
            name: "balance keyword inside a sentence, accents and case",
            peer: PEER,
            body: "Hola, ¿cuál es mi SÁLDO?",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Balance,
            expect: vec![reply(BALANCE)],
        },
        Case {
            name: "other balance keyword",
            peer: PEER,
            body: "cuanto es la deuda",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Balance,
            expect: vec![reply(BALANCE)],
        },
        Case {
            name: "balance keyword from an unknown number",
            peer: "+5491199999999",
            body: "saldo",
            known: false,
            replies: 0,
            tickets: 0,
            rule: Rule::Balance,
            expect: vec![reply(
                "Red Sur: no encontramos un cliente con este número. Comuníquese con nosotros para actualizar sus datos.",
            )],
        },
        Case {
            name: "a word that only starts like a keyword is not one",
            peer: PEER,
            body: "me cuentan que hay corte",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Unknown,
            expect: vec![reply(
                "Red Sur: envíe SALDO para conocer su saldo o SOPORTE para pedir asistencia técnica. Envíe BAJA para no recibir avisos.",
            )],
        },
        Case {
            name: "ticket keyword opens a ticket",
            peer: PEER,
            body: "soporte sin internet",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Ticket,
            expect: vec![Did::Ticket {
                text: "soporte sin internet".into(),
                reply: Some(ticket_reply.into()),
            }],
        },
        Case {
            name: "ticket from an unknown number is still opened",
            peer: "+5491199999999",
            body: "Reclamo: no anda",
            known: false,
            replies: 0,
            tickets: 2,
            rule: Rule::Ticket,
            expect: vec![Did::Ticket {
                text: "Reclamo: no anda".into(),
                reply: Some(ticket_reply.into()),
            }],
        },
        Case {
            name: "fourth ticket in a day gets the limit reply",
            peer: PEER,
            body: "soporte otra vez",
            known: true,
            replies: 3,
            tickets: 3,
            rule: Rule::TicketLimit,
            expect: vec![reply(
                "Red Sur: ya registramos sus reclamos de hoy. Un técnico se comunicará a la brevedad.",
            )],
        },
        Case {
            name: "ticket wins over balance",
            peer: PEER,
            body: "ayuda con mi saldo",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Ticket,
            expect: vec![Did::Ticket {
                text: "ayuda con mi saldo".into(),
                reply: Some(ticket_reply.into()),
            }],
        },
        Case {
            name: "opt-out wins over everything",
            peer: PEER,
            body: "BAJA",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::OptOut,
            expect: vec![
                Did::OptOut(true),
                reply(
                    "Red Sur: no recibirá más avisos en este número. Para volver a recibirlos envíe ALTA.",
                ),
            ],
        },
        Case {
            name: "STOP is an opt-out too",
            peer: PEER,
            body: "stop.",
            known: false,
            replies: 0,
            tickets: 0,
            rule: Rule::OptOut,
            expect: vec![
                Did::OptOut(true),
                reply(
                    "Red Sur: no recibirá más avisos en este número. Para volver a recibirlos envíe ALTA.",
                ),
            ],
        },
        Case {
            name: "opt-out only when it is the whole text; this is a ticket",
            peer: PEER,
            body: "quiero dar de baja el servicio",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::Ticket,
            expect: vec![Did::Ticket {
                text: "quiero dar de baja el servicio".into(),
                reply: Some(ticket_reply.into()),
            }],
        },
        Case {
            name: "opt-in",
            peer: PEER,
            body: "Alta",
            known: true,
            replies: 0,
            tickets: 0,
            rule: Rule::OptIn,
            expect: vec![
                Did::OptOut(false),
                reply("Red Sur: volverá a recibir avisos en este número."),
            ],
        },
        Case {
            name: "alphanumeric sender never answered",
            peer: "Personal",
            body: "saldo",
            known: false,
            replies: 0,
            tickets: 0,
            rule: Rule::Ignored,
            expect: vec![],
        },
        Case {
            name: "short code never answered",
            peer: "2020",
            body: "BAJA",
            known: false,
            replies: 0,
            tickets: 0,
            rule: Rule::Ignored,
            expect: vec![],
        },
        Case {
            name: "reply cap drops the reply",
            peer: PEER,
            body: "saldo",
            known: true,
            replies: 10,
            tickets: 0,
            rule: Rule::Balance,
            expect: vec![],
        },
        Case {
            name: "reply cap keeps the ticket but drops its reply",
            peer: PEER,
            body: "soporte",
            known: true,
            replies: 10,
            tickets: 0,
            rule: Rule::Ticket,
            expect: vec![Did::Ticket {
                text: "soporte".into(),
                reply: None,
            }],
        },
        Case {
            name: "reply cap keeps the opt-out",
            peer: PEER,
            body: "baja",
            known: true,
            replies: 12,
            tickets: 0,
            rule: Rule::OptOut,
            expect: vec![Did::OptOut(true)],
        },
    ];
    let s = settings();
    let customer = ana();
    for c in cases {
        let facts = Facts {
            customer: if c.known {
                Found::One(&customer)
            } else {
                Found::NotFound
            },
            replies_last_hour: c.replies,
            tickets_today: c.tickets,
            outage: None,
        };
        let d = decide(&s, &company(), c.peer, c.body, facts);
        assert_eq!(d.rule, c.rule, "{}: {}", c.name, d.why);
        assert_eq!(did(&d), c.expect, "{}: {}", c.name, d.why);
    }
}

#[test]
fn disabled_rules_and_silent_mode() {
    let mut s = settings();
    s.balance.enabled = false;
    s.ticket.enabled = false;
    s.optout.enabled = false;
    s.unknown = UnknownMode::Silent;
    let customer = ana();
    let facts = Facts {
        customer: Found::One(&customer),
        replies_last_hour: 0,
        tickets_today: 0,
        outage: None,
    };
    for body in ["saldo", "soporte", "baja", "hola"] {
        let d = decide(&s, &company(), PEER, body, facts);
        assert_eq!(d.rule, Rule::Unknown, "{body}");
        assert!(d.actions.is_empty(), "{body}");
    }
}

#[test]
fn ambiguous_numbers_are_not_guessed() {
    let s = settings();
    let facts = Facts {
        customer: Found::Ambiguous(2),
        replies_last_hour: 0,
        tickets_today: 0,
        outage: None,
    };
    let d = decide(&s, &company(), PEER, "saldo", facts);
    assert!(d.why.contains("2 customers"), "{}", d.why);
    let Action::Reply(text) = &d.actions[0] else {
        panic!("expected a reply")
    };
    assert!(!text.contains("1.234"), "{text}");
}

#[test]
fn custom_keywords_and_english() {
    let mut s = Settings::default();
    s.balance.keywords = vec!["balance".into(), "mi cuenta".into()];
    s.fill_defaults(Language::En);
    let en = Company {
        name: "South Net".into(),
        language: Language::En,
    };
    let customer = ana();
    let facts = Facts {
        customer: Found::One(&customer),
        replies_last_hour: 0,
        tickets_today: 0,
        outage: None,
    };
    let d = decide(&s, &en, PEER, "what's my BALANCE", facts);
    assert_eq!(
        did(&d),
        vec![reply(
            "Dear Ana Pérez, your pending balance is $1,234.50. Thank you for contacting South Net."
        )]
    );
    assert_eq!(decide(&s, &en, PEER, "cuenta", facts).rule, Rule::Unknown);
    assert_eq!(
        decide(&s, &en, PEER, "ver mi cuenta", facts).rule,
        Rule::Balance
    );
}

#[test]
fn settings_are_checked() {
    let mut s = settings();
    s.balance.reply = Some("Hola %nombre%, debe %deudaa%".into());
    s.ticket.keywords = vec![];
    s.ticket.alert_groups = vec!["guardia".into()];
    s.payment.template = Some("Pago de %monto% (%nodo%)".into());
    s.templates
        .insert("corte".into(), "Hola %nombre% (%nodo%)".into());
    s.templates
        .insert("pago".into(), "Recibimos %monto%".into());
    s.templates.insert("vacia".into(), " ".into());
    let extra: BTreeSet<String> = ["nodo".to_string()].into();
    let errors = s.check(&extra, &[]);
    let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "rules.ticket.keywords",
            "rules.balance.reply",
            "rules.templates.pago",
            "rules.templates.vacia",
            "rules.ticket.alert_groups"
        ]
    );
    assert!(settings().check(&extra, &[]).is_empty());
}

#[test]
fn an_unknown_balance_is_not_told_as_zero() {
    let s = settings();
    let no_balance = Customer {
        balance: None,
        ..ana()
    };
    let facts = Facts {
        customer: Found::One(&no_balance),
        replies_last_hour: 0,
        tickets_today: 0,
        outage: None,
    };
    let d = decide(&s, &company(), PEER, "saldo", facts);
    assert_eq!(d.rule, Rule::Balance);
    assert_eq!(
        did(&d),
        vec![reply(
            "Estimado Ana Pérez, su saldo no está disponible en este momento. Consúltelo con Red Sur."
        )]
    );
    assert!(d.why.contains("no balance on record"), "{}", d.why);
    // In English, and `%deuda%` in any other template says it is not available.
    let mut en = Settings::default();
    en.fill_defaults(Language::En);
    en.help_reply = Some("Balance: %deuda%".into());
    let english = Company {
        name: "Red Sur".into(),
        language: Language::En,
    };
    let d = decide(&en, &english, PEER, "balance please", facts);
    assert_eq!(
        did(&d),
        vec![reply("Balance: not available")],
        "no keyword: the help text"
    );
    let d = decide(&en, &english, PEER, "saldo", facts);
    assert_eq!(
        did(&d),
        vec![reply(
            "Dear Ana Pérez, your balance is not available right now. Please ask Red Sur for it."
        )]
    );
    // A known zero balance is still told as zero.
    let paid = Customer {
        balance: Some(Money(0)),
        ..ana()
    };
    let d = decide(
        &s,
        &company(),
        PEER,
        "saldo",
        Facts {
            customer: Found::One(&paid),
            ..facts
        },
    );
    assert_eq!(
        did(&d),
        vec![reply(
            "Estimado Ana Pérez, su saldo pendiente de pago es $ 0,00. Gracias por comunicarse con Red Sur."
        )]
    );
}

#[test]
fn an_open_outage_answers_ticket_keywords_and_leaves_the_rest() {
    let s = settings();
    let customer = ana();
    let outage = OutageFacts {
        id: 3,
        zone: "norte".into(),
        eta: "hoy a las 18:00".into(),
        message: String::new(),
    };
    let facts = |replies: u32| Facts {
        customer: Found::One(&customer),
        replies_last_hour: replies,
        tickets_today: 0,
        outage: Some(&outage),
    };
    let expected = "Red Sur: estamos trabajando en el corte de la zona norte. Estimamos \
                    normalizarlo hoy a las 18:00. No hace falta abrir un reclamo; le avisaremos \
                    cuando se restablezca.";
    for body in ["sin internet, soporte", "SOPORTE", "reclamo"] {
        let d = decide(&s, &company(), PEER, body, facts(0));
        assert_eq!(d.rule, Rule::Outage, "{body}: {}", d.why);
        assert_eq!(did(&d), vec![reply(expected), Did::Outage(3)], "{body}");
    }
    // Balance and opt-out work as usual.
    let d = decide(&s, &company(), PEER, "saldo", facts(0));
    assert_eq!((d.rule, did(&d)), (Rule::Balance, vec![reply(BALANCE)]));
    let d = decide(&s, &company(), PEER, "baja", facts(0));
    assert_eq!(d.rule, Rule::OptOut);
    // The reply cap still applies: linked, not answered.
    let d = decide(&s, &company(), PEER, "soporte", facts(10));
    assert_eq!(did(&d), vec![Did::Outage(3)], "{}", d.why);
    assert!(d.why.contains("reply dropped"), "{}", d.why);
}
