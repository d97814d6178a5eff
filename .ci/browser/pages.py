"""Drives the operators' pages of a running `pasarela demo` in headless Chromium (WebDriver).

Usage: pages.py BASE SIM_BASE PASSWORD SHOTS_DIR [AXE_JS]
Each step prints one line; the first failure raises with what was on the page.
"""
import json
import re
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

BASE, SIM, PASSWORD, SHOTS = sys.argv[1:5]
AXE = sys.argv[5] if len(sys.argv) > 5 else None
os.makedirs(SHOTS, exist_ok=True)

opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
          "--disable-gpu", "--lang=es-AR"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# A wait that spans a navigation (a click that reloads the page) may find an element of the old
# page that is gone a moment later: that is "not yet", not a failure.
wait = WebDriverWait(
    driver, 60, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
)
axe_problems = []


def step(name):
    print(f"browser: {name}", flush=True)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def axe(name):
    """Runs axe-core on the page; keeps serious and critical findings."""
    if not AXE:
        return
    driver.execute_script(open(AXE).read())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations))).catch(e => done('ERR ' + e));")
    if result.startswith("ERR"):
        raise SystemExit(f"axe failed on {name}: {result}")
    for v in json.loads(result):
        if v["impact"] in ("serious", "critical"):
            axe_problems.append(f"{name}: {v['id']} ({v['impact']}): {v['help']} — "
                                + "; ".join(n["html"][:120] for n in v["nodes"][:3]))


def visit(path, name):
    driver.get(BASE + path)
    shot(name)
    axe(name)


def text_of(css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def sim_sent():
    with urllib.request.urlopen(SIM + "/sent") as r:
        return json.load(r)


try:
    step("log in")
    driver.get(BASE + "/messages")
    wait.until(lambda d: "/login" in d.current_url)
    shot("01-login")
    axe("login")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(lambda d: d.current_url.endswith("/messages"))

    step("the dashboard shows the simulated modem's signal")
    visit("/", "02-dashboard")
    wait.until(lambda d: "dBm" in text_of("tr.route .detail"))
    print("  " + text_of("tr.route"))

    step("send an SMS from /send")
    visit("/send", "03-send")
    driver.find_element(By.NAME, "to").send_keys("011 15-2345-6780")
    body = "Su pago fue registrado. ¡Gracias, Bruno!"
    driver.find_element(By.NAME, "text").send_keys(body)
    wait.until(lambda d: d.find_element(By.ID, "counter").get_attribute("data-parts") == "1")
    print("  counter: " + text_of("#counter"))
    assert "GSM-7" in text_of("#counter"), text_of("#counter")
    shot("03-send-filled")
    driver.find_element(By.ID, "send-submit").click()
    wait.until(lambda d: "/messages/" in d.current_url)
    message_url = driver.current_url
    deadline = time.time() + 60
    while "state-delivered" not in driver.find_element(By.ID, "msg-state").get_attribute("class"):
        if time.time() > deadline:
            raise SystemExit("the message was not delivered: " + text_of("main"))
        time.sleep(0.5)
        driver.get(message_url)
    shot("04-message")
    axe("message")
    assert any(m["text"] == body for m in sim_sent()), sim_sent()
    visit("/messages?direction=out&q=bruno", "05-messages")
    row = driver.find_element(By.CSS_SELECTOR, "table.list tbody tr")
    assert body in row.text and "entregado" in row.text, row.text
    print("  " + row.text)

    step("a customer texts 'saldo': the thread appears without a reload")
    visit("/conversations", "06-conversations-before")
    driver.execute_script("window.__same_page = true;")
    req = urllib.request.Request(SIM + "/inbound", method="POST",
                                 data=json.dumps({"from": "+5493515550101", "text": "saldo"}).encode())
    urllib.request.urlopen(req).read()
    wait.until(lambda d: "Carla Núñez" in d.find_element(By.ID, "threads").text
               and "15.800,00" in d.find_element(By.ID, "threads").text)
    assert driver.execute_script("return window.__same_page === true;"), "the page was reloaded"
    shot("06-conversations")

    step("reply from the conversation")
    driver.find_element(By.CSS_SELECTOR, "li.thread[data-peer='+5493515550101'] a").click()
    wait.until(lambda d: "respuesta automática" in d.find_element(By.ID, "thread").text)
    axe("conversation")
    driver.find_element(By.ID, "reply-text").send_keys("Hola Carla, ya registramos su consulta.")
    driver.find_element(By.ID, "reply-submit").click()
    wait.until(lambda d: "operador (admin)" in d.find_element(By.ID, "thread").text)
    wait.until(lambda d: any(m["to"] == "+5493515550101" and "ya registramos" in m["text"]
                             for m in sim_sent()))
    shot("07-conversation")

    step("import a CSV with one bad row and see the row's error")
    visit("/customers", "08-customers")
    csv = "codigo;nombre;telefono;deuda\n2001;Luis Díaz;1133334444;1.000,00\n2002;Mal Número;12;10\n"
    csv_path = os.path.join(SHOTS, "clientes.csv")
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write(csv)
    driver.find_element(By.ID, "csv-file").send_keys(os.path.abspath(csv_path))
    wait.until(lambda d: "Luis" in d.find_element(By.ID, "csv").get_attribute("value"))
    driver.find_element(By.ID, "import-preview").click()
    wait.until(lambda d: d.find_elements(By.ID, "import-errors"))
    errors = text_of("#import-errors")
    assert errors.split("\n")[1].startswith("3 "), errors
    assert "1" in text_of("#import-good"), text_of("#import-good")
    print("  " + errors.replace("\n", " | "))
    shot("09-import-preview")
    axe("import-preview")
    driver.find_element(By.ID, "import-commit").click()
    wait.until(lambda d: "1 nuevos" in text_of("main"))

    step("a template picked on /send, and a bulk CSV with a bad row refused by line")
    visit("/send", "17-send-template")
    Select(driver.find_element(By.ID, "template")).select_by_value("recordatorio")
    wait.until(lambda d: d.find_element(By.ID, "text").get_attribute("value").startswith("Hola %nombre%"))
    driver.find_element(By.NAME, "to").send_keys("1123456789")
    wait.until(lambda d: "Ana Pérez" in text_of("#counter"))
    print("  counter: " + text_of("#counter"))
    bulk_path = os.path.join(SHOTS, "envio.csv")
    with open(bulk_path, "w", encoding="utf-8") as f:
        f.write("telefono,texto\n1123456789,Aviso para %nombre%\n12,Hola\n")
    driver.find_element(By.ID, "bulk-csv-file").send_keys(os.path.abspath(bulk_path))
    wait.until(lambda d: "Aviso" in d.find_element(By.ID, "bulk-csv").get_attribute("value"))
    driver.find_element(By.ID, "bulk-password").send_keys(PASSWORD)
    driver.find_element(By.ID, "bulk-submit").click()
    wait.until(lambda d: d.find_elements(By.ID, "bulk-problems"))
    assert "CSV, línea 3, to:" in text_of("#bulk-problems"), text_of("#bulk-problems")
    print("  " + text_of("#bulk-problems"))
    shot("18-send-bulk-refused")
    axe("send-bulk-refused")

    step("the system page: the doctor's checks, then a user added, given a password, removed")
    visit("/system", "19-system")
    driver.find_element(By.ID, "run-checks").click()
    wait.until(lambda d: d.find_elements(By.ID, "check-list"))
    checks = text_of("#check-list")
    assert "modem1: SIM ready" in checks, checks
    print("  " + checks.split("\n")[1])
    shot("20-system-checks")
    axe("system-checks")
    driver.find_element(By.ID, "new-name").send_keys("operadora")
    Select(driver.find_element(By.ID, "new-role")).select_by_value("operator")
    driver.find_element(By.ID, "new-password").send_keys("clave-de-la-operadora")
    driver.find_element(By.ID, "user-add-submit").click()
    wait.until(lambda d: "Usuario agregado: operadora" in text_of("main"))
    driver.find_element(By.ID, "password-operadora").send_keys("otra-clave-larga")
    driver.find_element(By.ID, "passwd-operadora").click()
    wait.until(lambda d: "Contraseña cambiada: operadora" in text_of("main"))
    shot("21-system-users")
    axe("system-users")
    driver.find_element(By.ID, "remove-operadora").click()
    wait.until(lambda d: "Usuario quitado: operadora" in text_of("main"))

    step("rules: a holiday and a night window, first refused beside its field, then saved")
    visit("/rules", "22-rules-windows")
    driver.find_element(By.ID, "windows-holidays").send_keys("2026-12-25")
    for field, value in (("name", "noche"), ("days", "lun-vie"), ("from", "25:00"), ("to", "23:00")):
        driver.find_element(By.ID, f"win-0-{field}").send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "form[action='/rules'] > button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.ID, "win-0-err"))
    assert "25:00" in text_of("#win-0-err"), text_of("#win-0-err")
    assert driver.find_element(By.ID, "win-0-from").get_attribute("aria-invalid") == "true"
    print("  " + text_of("#win-0-err"))
    shot("23-rules-window-error")
    axe("rules-window-error")
    driver.find_element(By.ID, "win-0-from").clear()
    driver.find_element(By.ID, "win-0-from").send_keys("20:00")
    driver.find_element(By.CSS_SELECTOR, "form[action='/rules'] > button[type=submit]").click()
    wait.until(lambda d: "Reglas guardadas" in text_of("main"))
    assert driver.find_element(By.ID, "win-0-name").get_attribute("value") == "noche"
    assert "2026-12-25" in driver.find_element(By.ID, "windows-holidays").get_attribute("value")

    step("the other pages")
    for path, name in (("/customers/1003", "10-customer"), ("/tickets", "11-tickets"),
                       ("/rules", "12-rules"), ("/channels", "13-channels"), ("/system", "14-system")):
        visit(path, name)
        assert driver.find_element(By.TAG_NAME, "h1").text, path

    step("a campaign: the form's live preview count, create, start, progress")
    visit("/campaigns/new", "17-campaign-new")
    driver.find_element(By.ID, "c-name").send_keys("Aviso de prueba")
    driver.find_element(By.ID, "c-template").send_keys("%nombre%: aviso de prueba")
    wait.until(lambda d: "clientes coinciden" in text_of("#campaign-preview"))
    shot("18-campaign-preview")
    driver.find_element(By.ID, "campaign-create").click()
    wait.until(lambda d: re.search(r"/campaigns/[0-9]+$", d.current_url))
    axe("campaign-draft")
    driver.find_element(By.ID, "campaign-start").click()
    wait.until(lambda d: text_of("#campaign-state") in ("en curso", "terminada"))
    wait.until(lambda d: d.find_elements(By.ID, "campaign-progress"))
    shot("19-campaign-progress")
    axe("campaign-progress")
    visit("/campaigns", "20-campaigns")
    assert "Aviso de prueba" in text_of("#campaigns")

    step("switch to English")
    driver.get(BASE + "/")
    shot("15-dashboard-busy")
    driver.find_element(By.ID, "lang-switch").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Dashboard")
    shot("16-dashboard-en")
    driver.get(BASE + "/messages")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Messages"

    step("log out")
    driver.find_element(By.XPATH, "//button[text()='Log out']").click()
    wait.until(lambda d: "/login" in d.current_url)
except Exception:
    shot("failure")
    print(driver.page_source[:4000], file=sys.stderr)
    raise
finally:
    driver.quit()

if axe_problems:
    print("\n".join(axe_problems))
    raise SystemExit(f"axe-core: {len(axe_problems)} serious or critical findings")
print(f"browser: all steps passed; screenshots in {SHOTS}" + ("; axe-core clean" if AXE else ""))
