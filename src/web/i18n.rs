//! The pages' words: one table per language. Spanish is the default; a user's choice is kept
//! on their row. A key missing from a table shows the key itself (a test keeps the tables in
//! step).

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Es,
    En,
}

impl Lang {
    pub fn parse(code: &str) -> Lang {
        if code == "en" { Lang::En } else { Lang::Es }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }
}

/// Looks words up for one language; templates call `tr.t("key")`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn t(&self, key: &str) -> &'static str {
        let table = match self.lang {
            Lang::Es => ES,
            Lang::En => EN,
        };
        table
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| {
                // Keys are literals of the templates; a missing one is a bug the test below catches.
                ES.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| *v)
                    .unwrap_or("?")
            })
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The language the switch offers.
    pub fn other(&self) -> &'static str {
        match self.lang {
            Lang::Es => "en",
            Lang::En => "es",
        }
    }

    /// A message state in words.
    pub fn state(&self, state: &str) -> &'static str {
        self.t(&format!("state.{state}"))
    }
}

pub const ES: &[(&str, &str)] = &[
    ("nav.dashboard", "Tablero"),
    ("nav.conversations", "Conversaciones"),
    ("nav.messages", "Mensajes"),
    ("nav.send", "Enviar"),
    ("nav.customers", "Clientes"),
    ("nav.tickets", "Tickets"),
    ("nav.rules", "Reglas"),
    ("nav.channels", "Canales"),
    ("nav.system", "Sistema"),
    ("nav.menu", "Menú principal"),
    ("lang.switch", "English"),
    ("logout", "Salir"),
    ("login.title", "Ingresar"),
    ("login.username", "Usuario"),
    ("login.password", "Contraseña"),
    ("login.submit", "Ingresar"),
    ("login.wrong", "Usuario o contraseña incorrectos."),
    (
        "login.throttled",
        "Demasiados intentos fallidos. Espere y vuelva a intentar en (segundos):",
    ),
    ("login.expired", "El formulario venció; vuelva a intentar."),
    ("forbidden", "Esta página es solo para administradores."),
    (
        "csrf",
        "El formulario venció o no vino de esta página; recárguela y vuelva a intentar.",
    ),
    ("dash.routes", "Rutas"),
    ("dash.queue", "Cola"),
    ("dash.today", "Hoy"),
    ("dash.failures", "Últimas fallas"),
    ("dash.none", "Ninguna."),
    ("dash.up", "activa"),
    ("dash.down", "caída"),
    ("dash.in", "entrantes"),
    ("dash.out", "salientes"),
    ("dash.live", "Se actualiza solo cada pocos segundos."),
    ("col.route", "Ruta"),
    ("col.channel", "Canal"),
    ("col.state", "Estado"),
    ("col.detail", "Detalle"),
    ("col.count", "Cantidad"),
    ("col.time", "Hora"),
    ("col.number", "Número"),
    ("col.text", "Texto"),
    ("col.error", "Error"),
    ("col.direction", "Dirección"),
    ("col.who", "Quién"),
    ("col.name", "Nombre"),
    ("col.code", "Código"),
    ("col.phones", "Teléfonos"),
    ("col.balance", "Saldo"),
    ("col.line", "Línea"),
    ("col.field", "Campo"),
    ("col.role", "Rol"),
    ("col.id", "N.º"),
    ("col.operator", "Operador"),
    ("col.forward", "Reenvío"),
    ("col.category", "Categoría"),
    ("send.template", "Plantilla"),
    ("send.no_template", "(ninguna: escribir el texto)"),
    (
        "send.template_hint",
        "Las %variables% se completan con los datos de cada cliente encontrado por su número.",
    ),
    (
        "send.csv",
        "O un archivo CSV (columna to o telefono; columna text opcional)",
    ),
    ("send.csv_file", "Elegir el archivo CSV"),
    ("send.line", "línea"),
    ("send.src_numbers", "lista de números"),
    ("send.src_csv", "CSV"),
    (
        "send.csv_no_to",
        "no hay columna `to` (ni `telefono`, `numero`, `phone`); la primera línea nombra las columnas",
    ),
    ("send.empty", "está vacío"),
    (
        "send.no_recipients",
        "pegue números o elija un archivo CSV; no hay destinatarios",
    ),
    (
        "send.no_text",
        "está vacío (escriba un texto o elija una plantilla)",
    ),
    (
        "send.bulk_invalid",
        "No se envió nada. Filas con problemas:",
    ),
    (
        "send.channel_hint",
        "WhatsApp: texto libre solo dentro de las 24 horas del último mensaje del cliente. Email: \"Para\" es la dirección y lleva asunto.",
    ),
    ("send.subject", "Asunto (solo email)"),
    (
        "send.wa_closed",
        "WhatsApp solo lleva texto libre dentro de las 24 horas del último mensaje del cliente por WhatsApp; envíelo por SMS o con una plantilla aprobada",
    ),
    ("send.wa_last", "último mensaje:"),
    ("send.wa_never", "el cliente nunca escribió por WhatsApp"),
    (
        "send.email_vars",
        "las %variables% se completan con el cliente de un número de teléfono; en un email escriba el texto completo",
    ),
    ("send.title", "Enviar un SMS"),
    ("send.to", "Para (número)"),
    ("send.text", "Texto"),
    ("send.channel", "Canal"),
    ("send.submit", "Enviar"),
    ("send.customer", "Buscar cliente (nombre o número)"),
    ("send.counter", "caracteres · partes · codificación"),
    ("send.bulk", "Envío masivo"),
    ("send.numbers", "Números (uno por línea)"),
    (
        "send.password",
        "Su contraseña, para confirmar el envío masivo",
    ),
    ("send.bulk_submit", "Enviar a todos"),
    ("send.bulk_done", "Mensajes encolados:"),
    (
        "send.bad_password",
        "La contraseña no es correcta; no se envió nada.",
    ),
    ("msg.title", "Mensajes"),
    ("msg.log", "Cambios de estado"),
    ("msg.filter", "Filtrar"),
    ("msg.since", "Desde"),
    ("msg.until", "Hasta"),
    ("msg.search", "Buscar texto"),
    ("msg.origin", "Origen"),
    ("msg.auto", "automático"),
    ("msg.manual", "manual (desde estas páginas)"),
    ("msg.any", "todos"),
    ("msg.csv", "Exportar CSV"),
    ("msg.next", "Más antiguos"),
    ("msg.resend", "Reenviar"),
    ("msg.cancel", "Cancelar"),
    ("msg.parts", "Partes enviadas"),
    ("msg.created", "Creado"),
    ("msg.sent", "Enviado"),
    ("msg.delivered", "Entregado"),
    ("msg.updated", "Último cambio"),
    ("msg.attempts", "Intentos"),
    ("msg.route", "Ruta"),
    ("msg.none", "No hay mensajes con estos filtros."),
    ("msg.conversation", "Ver la conversación"),
    ("dir.in", "entrante"),
    ("dir.out", "saliente"),
    ("who.auto", "respuesta automática"),
    ("who.operator", "operador"),
    ("who.campaign", "campaña"),
    ("who.notice", "aviso"),
    ("who.customer", "cliente"),
    ("conv.reply_on", "La respuesta va por"),
    (
        "conv.wa_open",
        "Ventana de 24 horas de WhatsApp abierta: se puede responder con texto libre hasta el",
    ),
    (
        "conv.wa_closed_since",
        "La ventana de 24 horas de WhatsApp está cerrada: el cliente no escribió en las últimas 24 horas",
    ),
    ("conv.wa_last_in", "su último mensaje:"),
    (
        "conv.wa_via_template",
        "WhatsApp solo acepta plantillas aprobadas fuera de la ventana: la respuesta irá dentro de la plantilla",
    ),
    (
        "conv.wa_closed",
        "WhatsApp solo acepta plantillas aprobadas fuera de la ventana, y no hay una configurada (whatsapp.outside_window_template): responda por SMS desde Enviar, o espere a que el cliente escriba.",
    ),
    ("conv.title", "Conversaciones"),
    ("conv.unread", "sin leer"),
    ("conv.campaign", "campaña"),
    ("conv.reply", "Responder"),
    ("conv.reply_text", "Respuesta"),
    ("conv.none", "Todavía no hay conversaciones."),
    ("cust.title", "Clientes"),
    ("cust.search", "Buscar (código o nombre)"),
    ("cust.import", "Importar CSV"),
    ("cust.file", "Archivo CSV"),
    ("cust.paste", "o pegue el CSV aquí"),
    ("cust.preview", "Vista previa"),
    ("cust.commit", "Importar estas filas"),
    ("cust.good", "Filas válidas:"),
    ("cust.rejected", "Filas con errores:"),
    ("cust.done", "Importación hecha:"),
    ("cust.inserted", "nuevos"),
    ("cust.updated", "actualizados"),
    ("cust.optout", "Bajas"),
    ("cust.none", "Ningún cliente coincide."),
    ("cust.total", "Clientes en el directorio:"),
    ("tick.title", "Tickets"),
    ("tick.open", "abierto"),
    ("tick.closed", "cerrado"),
    ("tick.close", "Cerrar"),
    ("tick.reopen", "Reabrir"),
    ("tick.assign", "Asignar a"),
    ("tick.all", "todos"),
    ("tick.none", "No hay tickets."),
    ("tick.fwd_off", "sin reenvío"),
    ("rules.title", "Reglas y plantillas"),
    ("rules.save", "Guardar"),
    ("rules.saved", "Reglas guardadas."),
    ("rules.keywords", "Palabras clave (separadas por comas)"),
    ("rules.reply", "Texto de respuesta"),
    ("rules.preview", "Vista previa para el cliente"),
    ("rules.balance", "Saldo"),
    ("rules.ticket", "Ticket"),
    ("rules.optout", "Baja"),
    ("rules.unknown", "Mensaje no reconocido"),
    ("rules.windows", "Ventanas de entrega y feriados"),
    (
        "rules.windows_hint",
        "Los avisos y los envíos masivos salen solo dentro de su ventana; las respuestas a un cliente salen siempre. Incluidas: laboral (lun-vie 9-18), extendido (lun-vie 8-21), fulltime (todos los días 7-23, también feriados); always: sin ventana. Para quitar una ventana o un grupo, vacíe su nombre.",
    ),
    ("rules.win_notifications", "Ventana de los avisos"),
    ("rules.win_bulk", "Ventana de los envíos masivos"),
    ("rules.holidays", "Feriados (AAAA-MM-DD, uno por línea)"),
    ("rules.window", "Ventana"),
    ("rules.new_window", "Nueva ventana"),
    ("rules.win_name", "Nombre"),
    ("rules.win_days", "Días (lun-vie, sab, dom…)"),
    ("rules.win_from", "Desde (HH:MM)"),
    ("rules.win_to", "Hasta (HH:MM)"),
    ("rules.win_holidays", "También los feriados"),
    ("rules.groups", "Grupos"),
    (
        "rules.groups_hint",
        "Grupos de destinatarios con su propia ventana; por ejemplo la guardia técnica recibe el aviso de cada ticket nuevo (ticket: grupos de alerta).",
    ),
    ("rules.group", "Grupo"),
    ("rules.new_group", "Nuevo grupo"),
    ("rules.group_name", "Nombre del grupo"),
    ("rules.group_phones", "Teléfonos (uno por línea)"),
    ("rules.group_window", "Ventana del grupo"),
    ("rules.enabled", "Activada"),
    ("chan.title", "Canales"),
    ("chan.test", "Enviar una prueba"),
    ("chan.test_to", "Número para la prueba"),
    ("chan.test_text", "Prueba de pasarela:"),
    (
        "chan.note",
        "El archivo de configuración (/etc/pasarela/pasarela.toml) es la fuente de las rutas y sus credenciales; esta página solo las muestra.",
    ),
    ("chan.none", "No hay rutas configuradas."),
    ("sys.title", "Sistema"),
    ("sys.backup", "Copia de seguridad"),
    (
        "sys.backup_download",
        "Descargar una copia de la base de datos",
    ),
    (
        "sys.backup_hint",
        "Una copia consistente, hecha mientras pasarela sigue funcionando. Para restaurarla: pasarela restore ARCHIVO, con el servicio detenido.",
    ),
    ("sys.version", "Versión"),
    ("sys.uptime", "Funcionando desde hace (segundos)"),
    ("sys.dbsize", "Tamaño de la base de datos"),
    ("sys.users", "Usuarios"),
    ("sys.customers", "Clientes"),
    ("sys.checks", "Comprobaciones"),
    (
        "sys.checks_hint",
        "Las mismas que `pasarela doctor`: configuración, permisos, módem, SIM y red, WhatsApp, email, journald.",
    ),
    ("sys.run_checks", "Ejecutar las comprobaciones"),
    ("sys.check", "Comprobación"),
    ("sys.fix", "Cómo arreglarlo"),
    ("chk.ok", "bien"),
    ("chk.fail", "FALLA"),
    ("chk.warn", "aviso"),
    ("chk.skip", "no ejecutada"),
    ("sys.new_password", "Nueva contraseña"),
    ("sys.change", "Cambiar"),
    ("sys.remove", "Quitar"),
    ("sys.add_user", "Agregar un usuario"),
    ("sys.password", "Contraseña (8 caracteres o más)"),
    (
        "sys.users_hint",
        "Los operadores envían, responden y atienden tickets; los administradores además cambian reglas y usuarios. Cambiar la contraseña cierra las sesiones del usuario. Desde la consola: pasarela user add|passwd|list.",
    ),
    ("sys.user_added", "Usuario agregado:"),
    ("sys.password_changed", "Contraseña cambiada:"),
    ("sys.user_removed", "Usuario quitado:"),
    (
        "sys.not_yourself",
        "No puede quitarse a sí mismo: pídaselo a otro administrador.",
    ),
    ("state.received", "recibido"),
    ("state.scheduled", "programado"),
    ("state.queued", "en cola"),
    ("state.sending", "enviando"),
    ("state.sent", "enviado"),
    ("state.delivered", "entregado"),
    ("state.read", "leído"),
    ("state.failed", "falló"),
    ("state.cancelled", "cancelado"),
    ("error", "Error"),
    ("not_found", "No encontrado."),
    ("yes", "sí"),
    ("no", "no"),
];

pub const EN: &[(&str, &str)] = &[
    ("nav.dashboard", "Dashboard"),
    ("nav.conversations", "Conversations"),
    ("nav.messages", "Messages"),
    ("nav.send", "Send"),
    ("nav.customers", "Customers"),
    ("nav.tickets", "Tickets"),
    ("nav.rules", "Rules"),
    ("nav.channels", "Channels"),
    ("nav.system", "System"),
    ("nav.menu", "Main menu"),
    ("lang.switch", "Español"),
    ("logout", "Log out"),
    ("login.title", "Log in"),
    ("login.username", "Username"),
    ("login.password", "Password"),
    ("login.submit", "Log in"),
    ("login.wrong", "Wrong username or password."),
    (
        "login.throttled",
        "Too many failed attempts. Wait and try again in (seconds):",
    ),
    ("login.expired", "The form expired; try again."),
    ("forbidden", "This page is for administrators only."),
    (
        "csrf",
        "The form expired or did not come from this page; reload it and try again.",
    ),
    ("dash.routes", "Routes"),
    ("dash.queue", "Queue"),
    ("dash.today", "Today"),
    ("dash.failures", "Last failures"),
    ("dash.none", "None."),
    ("dash.up", "up"),
    ("dash.down", "down"),
    ("dash.in", "in"),
    ("dash.out", "out"),
    ("dash.live", "Updates by itself every few seconds."),
    ("col.route", "Route"),
    ("col.channel", "Channel"),
    ("col.state", "State"),
    ("col.detail", "Detail"),
    ("col.count", "Count"),
    ("col.time", "Time"),
    ("col.number", "Number"),
    ("col.text", "Text"),
    ("col.error", "Error"),
    ("col.direction", "Direction"),
    ("col.who", "Who"),
    ("col.name", "Name"),
    ("col.code", "Code"),
    ("col.phones", "Phones"),
    ("col.balance", "Balance"),
    ("col.line", "Line"),
    ("col.field", "Field"),
    ("col.role", "Role"),
    ("col.id", "No."),
    ("col.operator", "Operator"),
    ("col.forward", "Forwarding"),
    ("col.category", "Category"),
    ("send.template", "Template"),
    ("send.no_template", "(none: write the text)"),
    (
        "send.template_hint",
        "%variables% are filled in with the data of each customer found by their number.",
    ),
    (
        "send.csv",
        "Or a CSV file (column to or telefono; column text optional)",
    ),
    ("send.csv_file", "Choose the CSV file"),
    ("send.line", "line"),
    ("send.src_numbers", "number list"),
    ("send.src_csv", "CSV"),
    (
        "send.csv_no_to",
        "no `to` column (or `telefono`, `numero`, `phone`); the first line names the columns",
    ),
    ("send.empty", "is empty"),
    (
        "send.no_recipients",
        "paste numbers or choose a CSV file; there is no recipient",
    ),
    ("send.no_text", "is empty (write a text or pick a template)"),
    ("send.bulk_invalid", "Nothing was sent. Rows with problems:"),
    (
        "send.channel_hint",
        "WhatsApp: free text only within 24 hours of the customer's last message. Email: \"To\" is the address, and it needs a subject.",
    ),
    ("send.subject", "Subject (email only)"),
    (
        "send.wa_closed",
        "WhatsApp carries free text only within 24 hours of the customer's last WhatsApp message; send it by SMS or as an approved template",
    ),
    ("send.wa_last", "last message:"),
    ("send.wa_never", "the customer never wrote on WhatsApp"),
    (
        "send.email_vars",
        "%variables% are filled from a phone number's customer; in an email write the whole text",
    ),
    ("send.title", "Send an SMS"),
    ("send.to", "To (number)"),
    ("send.text", "Text"),
    ("send.channel", "Channel"),
    ("send.submit", "Send"),
    ("send.customer", "Find a customer (name or number)"),
    ("send.counter", "characters · parts · encoding"),
    ("send.bulk", "Bulk send"),
    ("send.numbers", "Numbers (one per line)"),
    ("send.password", "Your password, to confirm the bulk send"),
    ("send.bulk_submit", "Send to all"),
    ("send.bulk_done", "Messages queued:"),
    (
        "send.bad_password",
        "The password is wrong; nothing was sent.",
    ),
    ("msg.title", "Messages"),
    ("msg.log", "State changes"),
    ("msg.filter", "Filter"),
    ("msg.since", "From"),
    ("msg.until", "Until"),
    ("msg.search", "Search text"),
    ("msg.origin", "Origin"),
    ("msg.auto", "automatic"),
    ("msg.manual", "manual (from these pages)"),
    ("msg.any", "all"),
    ("msg.csv", "Export CSV"),
    ("msg.next", "Older"),
    ("msg.resend", "Resend"),
    ("msg.cancel", "Cancel"),
    ("msg.parts", "Parts sent"),
    ("msg.created", "Created"),
    ("msg.sent", "Sent"),
    ("msg.delivered", "Delivered"),
    ("msg.updated", "Last change"),
    ("msg.attempts", "Attempts"),
    ("msg.route", "Route"),
    ("msg.none", "No messages match these filters."),
    ("msg.conversation", "See the conversation"),
    ("dir.in", "in"),
    ("dir.out", "out"),
    ("who.auto", "auto-reply"),
    ("who.operator", "operator"),
    ("who.campaign", "campaign"),
    ("who.notice", "notice"),
    ("who.customer", "customer"),
    ("conv.reply_on", "The reply goes by"),
    (
        "conv.wa_open",
        "WhatsApp's 24-hour window is open: free text can go until",
    ),
    (
        "conv.wa_closed_since",
        "WhatsApp's 24-hour window is closed: the customer has not written in the last 24 hours",
    ),
    ("conv.wa_last_in", "their last message:"),
    (
        "conv.wa_via_template",
        "Outside the window WhatsApp only takes approved templates: the reply goes inside the template",
    ),
    (
        "conv.wa_closed",
        "Outside the window WhatsApp only takes approved templates, and none is set (whatsapp.outside_window_template): answer by SMS from Send, or wait for the customer to write.",
    ),
    ("conv.title", "Conversations"),
    ("conv.unread", "unread"),
    ("conv.campaign", "campaign"),
    ("conv.reply", "Reply"),
    ("conv.reply_text", "Reply"),
    ("conv.none", "No conversations yet."),
    ("cust.title", "Customers"),
    ("cust.search", "Search (code or name)"),
    ("cust.import", "Import a CSV"),
    ("cust.file", "CSV file"),
    ("cust.paste", "or paste the CSV here"),
    ("cust.preview", "Preview"),
    ("cust.commit", "Import these rows"),
    ("cust.good", "Valid rows:"),
    ("cust.rejected", "Rows with errors:"),
    ("cust.done", "Import done:"),
    ("cust.inserted", "new"),
    ("cust.updated", "updated"),
    ("cust.optout", "Opt-outs"),
    ("cust.none", "No customer matches."),
    ("cust.total", "Customers in the directory:"),
    ("tick.title", "Tickets"),
    ("tick.open", "open"),
    ("tick.closed", "closed"),
    ("tick.close", "Close"),
    ("tick.reopen", "Reopen"),
    ("tick.assign", "Assign to"),
    ("tick.all", "all"),
    ("tick.none", "No tickets."),
    ("tick.fwd_off", "not forwarded"),
    ("rules.title", "Rules and templates"),
    ("rules.save", "Save"),
    ("rules.saved", "Rules saved."),
    ("rules.keywords", "Keywords (comma separated)"),
    ("rules.reply", "Reply text"),
    ("rules.preview", "Preview for customer"),
    ("rules.balance", "Balance"),
    ("rules.ticket", "Ticket"),
    ("rules.optout", "Opt-out"),
    ("rules.unknown", "Unrecognised message"),
    ("rules.windows", "Delivery windows and holidays"),
    (
        "rules.windows_hint",
        "Notifications and bulk sends go out only inside their window; replies to a customer always go. Built in: laboral (Mon-Fri 9-18), extendido (Mon-Fri 8-21), fulltime (every day 7-23, holidays too); always: no window. To remove a window or a group, empty its name.",
    ),
    ("rules.win_notifications", "Window for notifications"),
    ("rules.win_bulk", "Window for bulk sends"),
    ("rules.holidays", "Holidays (YYYY-MM-DD, one per line)"),
    ("rules.window", "Window"),
    ("rules.new_window", "New window"),
    ("rules.win_name", "Name"),
    ("rules.win_days", "Days (lun-vie, sab, dom…)"),
    ("rules.win_from", "From (HH:MM)"),
    ("rules.win_to", "To (HH:MM)"),
    ("rules.win_holidays", "Holidays too"),
    ("rules.groups", "Groups"),
    (
        "rules.groups_hint",
        "Recipient groups with their own window; for example the on-call technicians get each new ticket's alert (ticket: alert groups).",
    ),
    ("rules.group", "Group"),
    ("rules.new_group", "New group"),
    ("rules.group_name", "Group name"),
    ("rules.group_phones", "Phones (one per line)"),
    ("rules.group_window", "Group's window"),
    ("rules.enabled", "Enabled"),
    ("chan.title", "Channels"),
    ("chan.test", "Send a test"),
    ("chan.test_to", "Number for the test"),
    ("chan.test_text", "pasarela test:"),
    (
        "chan.note",
        "The config file (/etc/pasarela/pasarela.toml) is the source of the routes and their credentials; this page only shows them.",
    ),
    ("chan.none", "No routes are configured."),
    ("sys.title", "System"),
    ("sys.backup", "Backup"),
    ("sys.backup_download", "Download a copy of the database"),
    (
        "sys.backup_hint",
        "A consistent copy, made while pasarela keeps running. To restore it: pasarela restore FILE, with the service stopped.",
    ),
    ("sys.version", "Version"),
    ("sys.uptime", "Up for (seconds)"),
    ("sys.dbsize", "Database size"),
    ("sys.users", "Users"),
    ("sys.customers", "Customers"),
    ("sys.checks", "Checks"),
    (
        "sys.checks_hint",
        "The same as `pasarela doctor`: configuration, permissions, modem, SIM and network, WhatsApp, email, journald.",
    ),
    ("sys.run_checks", "Run the checks"),
    ("sys.check", "Check"),
    ("sys.fix", "How to fix it"),
    ("chk.ok", "ok"),
    ("chk.fail", "FAIL"),
    ("chk.warn", "warning"),
    ("chk.skip", "not run"),
    ("sys.new_password", "New password"),
    ("sys.change", "Change"),
    ("sys.remove", "Remove"),
    ("sys.add_user", "Add a user"),
    ("sys.password", "Password (8 characters or more)"),
    (
        "sys.users_hint",
        "Operators send, reply and handle tickets; admins also change rules and users. A new password ends the user's sessions. From the console: pasarela user add|passwd|list.",
    ),
    ("sys.user_added", "User added:"),
    ("sys.password_changed", "Password changed:"),
    ("sys.user_removed", "User removed:"),
    (
        "sys.not_yourself",
        "You cannot remove yourself: ask another admin.",
    ),
    ("state.received", "received"),
    ("state.scheduled", "scheduled"),
    ("state.queued", "queued"),
    ("state.sending", "sending"),
    ("state.sent", "sent"),
    ("state.delivered", "delivered"),
    ("state.read", "read"),
    ("state.failed", "failed"),
    ("state.cancelled", "cancelled"),
    ("error", "Error"),
    ("not_found", "Not found."),
    ("yes", "yes"),
    ("no", "no"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_have_the_same_keys() {
        let keys = |t: &[(&'static str, &'static str)]| {
            let mut k: Vec<&str> = t.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            k
        };
        assert_eq!(keys(ES), keys(EN));
        let mut k = keys(ES);
        let n = k.len();
        k.dedup();
        assert_eq!(k.len(), n, "a key appears twice");
    }

    #[test]
    fn every_key_used_by_a_template_is_translated() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("t(\"").skip(1) {
                let key = piece.split('"').next().unwrap();
                assert!(
                    ES.iter().any(|(k, _)| *k == key),
                    "{}: `{key}` is not in the tables",
                    path.display()
                );
            }
        }
    }
}
