"""The SMTP sink: real clients and raw dialogues, read back through the API."""
import base64
import datetime
import hashlib
import json
import os
import smtplib
import socket
import subprocess
import threading
import time
from email.message import EmailMessage

import pytest
import requests

from conftest import NOTIFYCTL


def conf(tmp, text=""):
    path = os.path.join(tmp, "smtp.conf")
    with open(path, "w") as f:
        f.write("[smtp]\n" + text)
    return ["--config", path]


def smtp_port(d):
    return d.smtp_port


@pytest.fixture
def sink(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(tmp)).start()
    d.smtp = d.smtp_port
    return d


class Dialogue:
    """A raw SMTP conversation."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline().decode()
            if not line:
                return lines or None
            lines.append(line.rstrip("\r\n"))
            if line[3:4] == " ":
                return lines

    def code(self):
        r = self.reply()
        return int(r[-1][:3]) if r else None

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.code()

    def close(self):
        # The file object holds the descriptor open too: close both, really hang up.
        self.f.close()
        self.s.close()


def messages(d, query=None):
    r = requests.get(d.url + ("/api/v1/search" if query else "/api/v1/messages"),
                     params={"query": query} if query else None)
    assert r.status_code == 200, r.text
    return r.json()


def test_smtplib_message_read_back(sink):
    m = EmailMessage()
    m["From"] = "Ann Example <ann@example.com>"
    m["To"] = "Bob <bob@example.com>"
    m["Cc"] = "cc@example.com"
    m["Reply-To"] = "replies@example.com"
    m["Subject"] = "Héllo wörld"
    m["Message-ID"] = "<abc-123@example.com>"
    m.set_content("Hi Bob,\n.a line with a leading dot\nBye\n")
    m.add_alternative("<p>Hi <b>Bob</b></p>", subtype="html")
    m.add_attachment(b"\x00\x01\x02" * 1000, maintype="application", subtype="octet-stream",
                     filename="data.bin")
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        code, caps = s.ehlo("client.example")
        assert code == 250
        for ext in (b"SIZE", b"PIPELINING", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES"):
            assert ext in caps
        sent = m.as_bytes(policy=m.policy.clone(linesep="\r\n"))
        s.sendmail("ann@example.com", ["bob@example.com", "cc@example.com", "secret@example.com"],
                   sent)
    page = messages(sink)
    assert set(page) == {"total", "unread", "count", "messages_count", "start", "tags", "messages"}
    assert (page["total"], page["unread"], page["count"]) == (1, 1, 1)
    s = page["messages"][0]
    assert set(s) >= {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
                      "Created", "Tags", "Size", "Attachments", "Snippet"}
    assert s["From"] == {"Name": "Ann Example", "Address": "ann@example.com"}
    assert s["To"] == [{"Name": "Bob", "Address": "bob@example.com"}]
    assert s["Bcc"] == [{"Name": "", "Address": "secret@example.com"}]
    assert s["ReplyTo"] == [{"Name": "", "Address": "replies@example.com"}]
    assert s["Subject"] == "Héllo wörld" and s["MessageID"] == "abc-123@example.com"
    assert s["Attachments"] == 1 and s["Snippet"].startswith("Hi Bob, .a line")
    full = requests.get(sink.url + "/api/v1/message/" + s["ID"]).json()
    # Bodies come back transfer-decoded, with the line endings they were sent with.
    assert full["Text"] == "Hi Bob,\r\n.a line with a leading dot\r\nBye\r\n"
    assert full["HTML"].strip() == "<p>Hi <b>Bob</b></p>"
    att = full["Attachments"][0]
    assert (att["FileName"], att["ContentType"], att["Size"]) == ("data.bin", "application/octet-stream", 3000)
    part = requests.get(sink.url + "/api/v1/message/%s/part/%s" % (s["ID"], att["PartID"]))
    assert part.content == b"\x00\x01\x02" * 1000
    assert requests.get(sink.url + "/api/v1/messages").json()["unread"] == 0  # shown: read
    # Raw: the envelope's Return-Path and a Received: header, then the bytes
    # exactly as sent (dot-unstuffed).
    raw = requests.get(sink.url + "/api/v1/message/%s/raw" % s["ID"]).content
    rp, first, rest = raw.split(b"\r\n", 2)
    assert rp == b"Return-Path: <ann@example.com>"
    assert first.startswith(b"Received: from client.example (127.0.0.1) by notifyd")
    assert rest == sent
    assert requests.get(sink.url + "/view/%s.txt" % s["ID"]).text == full["Text"]
    assert "<b>Bob</b>" in requests.get(sink.url + "/view/%s.html" % s["ID"]).text
    hdrs = requests.get(sink.url + "/api/v1/message/%s/headers" % s["ID"]).json()
    assert hdrs["Subject"] and hdrs["Received"]


def test_pipelining_and_dot_unstuffing_and_bare_lf(sink):
    d = Dialogue(sink.smtp)
    assert d.code() == 220
    body = b"Subject: piped\r\n\r\nline one\n..two dots\r\n.\r\n"
    d.send(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")
    assert [d.code() for _ in range(5)] == [250, 250, 250, 250, 354]
    d.send(body + b"MAIL FROM:<>\r\nRCPT TO:<e@y>\r\nDATA\r\n")
    assert [d.code() for _ in range(4)] == [250, 250, 250, 354]
    d.send(b"Subject: bounce\n\nfrom the null sender\n.\nQUIT\r\n")
    assert [d.code() for _ in range(2)] == [250, 221]
    page = messages(sink)
    assert page["total"] == 2
    raws = {m["Subject"]: requests.get(sink.url + "/api/v1/message/%s/raw" % m["ID"]).content
            for m in page["messages"]}
    assert raws["piped"].split(b"\r\n", 2)[::2] == [b"Return-Path: <a@x>",
                                                     b"Subject: piped\r\n\r\nline one\n.two dots\r\n"]
    assert raws["bounce"].split(b"\r\n", 2)[::2] == [b"Return-Path: <>",
                                                      b"Subject: bounce\n\nfrom the null sender\n"]


def test_command_errors_and_limits(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(tmp, "max_recipients = 2\nmax_size = 2K\n")).start()
    port = smtp_port(d)
    c = Dialogue(port)
    assert c.code() == 220
    assert c.cmd("MAIL FROM:<a@x>") == 503          # no EHLO yet
    assert c.cmd("EHLO") == 501
    assert c.cmd("EHLO client") == 250
    assert c.cmd("RCPT TO:<b@y>") == 503            # no MAIL
    assert c.cmd("DATA") == 503
    assert c.cmd("FROB") == 500
    assert c.cmd("VRFY root") == 502
    assert c.cmd("EXPN staff") == 502
    c.send("HELP\r\n")                              # what EHLO offers: no AUTH, no STARTTLS
    assert c.reply() == ["214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP"]
    assert c.cmd("X" * 3000) == 500                 # line too long; session goes on
    assert c.cmd("NOOP") == 250
    assert c.cmd("MAIL FROM:a@x") == 501
    assert c.cmd("MAIL FROM:<a@x> SIZE=999999") == 552
    assert c.cmd("MAIL FROM:<a@x> FROB=1") == 555
    assert c.cmd("MAIL FROM:<a@x> SIZE=100 BODY=8BITMIME") == 250
    assert c.cmd("MAIL FROM:<a@x>") == 503          # nested MAIL
    assert c.cmd("RCPT TO:<>") == 501
    assert c.cmd("RCPT TO:<1@y>") == 250
    assert c.cmd("RCPT TO:<2@y>") == 250
    assert c.cmd("RCPT TO:<3@y>") == 452
    assert c.cmd("DATA") == 354
    c.send(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n")
    assert c.code() == 552                          # too big: nothing stored
    assert c.cmd("RSET") == 250
    assert c.cmd("AUTH PLAIN AGZvbwBiYXI=") == 502  # auth is off
    assert c.cmd("STARTTLS") == 502
    assert c.cmd("QUIT") == 221
    c.close()
    # A client that leaves in the middle of DATA leaves nothing behind.
    c = Dialogue(port)
    c.code()
    c.send(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    assert [c.code() for _ in range(4)] == [250, 250, 250, 354]
    c.send(b"Subject: half\r\n\r\nhalf a message")
    c.close()
    d.wait_log("smtp session ended in DATA")
    assert messages(d)["total"] == 0
    assert d.wait_count("smtp message refused", 1) == 1


def test_idle_timeout_and_session_limit(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(tmp, "idle_timeout = 1s\nmax_sessions = 2\n")).start()
    port = smtp_port(d)
    a, b = Dialogue(port), Dialogue(port)
    assert a.code() == 220 and b.code() == 220
    c = Dialogue(port)
    assert c.code() == 421                          # the third session at once
    c.close()
    t0 = time.monotonic()
    assert a.code() == 421                          # silence: closed
    assert time.monotonic() - t0 < 5
    assert a.reply() is None
    a.close()
    b.close()


def test_auth_modes(daemons, tmp):
    d = daemons(http=True, smtp=True, args=conf(tmp, "auth = required\n")).start()
    port = smtp_port(d)
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.ehlo()
        assert s.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("a@x", ["b@y"], "Subject: no\r\n\r\nx\r\n")
        assert e.value.smtp_code == 530
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.login("anyone", "any password")   # any credential is accepted
        s.sendmail("a@x", ["b@y"], "Subject: yes\r\n\r\nx\r\n")
    c = Dialogue(port)
    c.code()
    c.cmd("EHLO x")
    assert c.cmd("AUTH LOGIN") == 334
    assert c.cmd("dXNlcg==") == 334
    assert c.cmd("cGFzcw==") == 235
    assert c.cmd("AUTH PLAIN AGEAYg==") == 503      # already
    c.close()
    c = Dialogue(port)
    c.code()
    c.cmd("EHLO x")
    assert c.cmd("AUTH PLAIN") == 334
    assert c.cmd("*") == 501
    assert c.cmd("AUTH CRAM-MD5") == 504
    c.close()
    assert messages(d)["total"] == 1


def test_mailpit_fields_return_path_checksums_unsubscribe_username(daemons, tmp):
    """What Mailpit's clients read besides the basics, as Mailpit fills it."""
    d = daemons(http=True, smtp=True, args=conf(tmp, "auth = any\n")).start()
    blob = os.urandom(5000)
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "ann@example.com", "bob@example.com", "fields"
    m["Return-Path"] = "<forged@example.com>"      # the client's: replaced
    m["List-Unsubscribe"] = "<https://example.com/u?id=1> (one click), <mailto:u@example.com>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    m.set_content("Return-Path: <in-the-body@example.com>\n")
    m.add_attachment(blob, maintype="application", subtype="octet-stream", filename="r.bin")
    with smtplib.SMTP("127.0.0.1", d.smtp_port) as s:
        s.login("carol", "any password")
        s.sendmail("bounces+42@example.com", ["bob@example.com"], m.as_bytes())
    c = Dialogue(d.smtp_port)
    c.code()
    c.cmd("EHLO x")
    assert (c.cmd("AUTH LOGIN"), c.cmd("ZGF2ZQ=="), c.cmd("cHc=")) == (334, 334, 235)  # dave
    assert (c.cmd("MAIL FROM:<>"), c.cmd("RCPT TO:<bob@example.com>"), c.cmd("DATA")) == (
        250, 250, 354)
    c.send(b"Subject: bounce\r\nList-Unsubscribe: https://example.com/u\r\n"
           b"Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: image/png\r\n"
           b"Content-ID: <logo@x>\r\n\r\nPNG\r\n--b--\r\n.\r\n")
    assert c.code() == 250
    c.close()
    listed = {x["Subject"]: x for x in messages(d)["messages"]}
    assert (listed["fields"]["Username"], listed["bounce"]["Username"]) == ("carol", "dave")

    full = requests.get(d.url + "/api/v1/message/" + listed["fields"]["ID"]).json()
    assert full["ReturnPath"] == "bounces+42@example.com" and full["Username"] == "carol"
    raw = requests.get(d.url + "/api/v1/message/%s/raw" % full["ID"]).content
    head, body = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)
    assert head.startswith(b"Return-Path: <bounces+42@example.com>\nReceived: ")
    assert b"forged" not in raw and b"Return-Path: <in-the-body@example.com>" in body
    hdrs = requests.get(d.url + "/api/v1/message/%s/headers" % full["ID"]).json()
    assert hdrs["Return-Path"] == ["<bounces+42@example.com>"]
    assert full["ListUnsubscribe"] == {
        "Header": "<https://example.com/u?id=1> (one click), <mailto:u@example.com>",
        "Links": ["https://example.com/u?id=1", "mailto:u@example.com"], "Errors": "",
        "HeaderPost": "List-Unsubscribe=One-Click"}
    (att,) = full["Attachments"]
    assert att["Size"] == len(blob) and att["Checksums"] == {
        "MD5": hashlib.md5(blob).hexdigest(), "SHA1": hashlib.sha1(blob).hexdigest(),
        "SHA256": hashlib.sha256(blob).hexdigest()}

    full = requests.get(d.url + "/api/v1/message/" + listed["bounce"]["ID"]).json()
    assert full["ReturnPath"] == "" and full["Username"] == "dave"
    assert full["ListUnsubscribe"]["Links"] == []
    assert full["ListUnsubscribe"]["Errors"] == (
        '"https://example.com/u" no valid unsubscribe links found')
    (img,) = full["Inline"]   # no file name: it goes by its Content-ID
    assert (img["FileName"], img["ContentID"], img["Size"]) == ("logo@x", "logo@x", 3)
    assert requests.get(d.url + "/api/v1/tags").json() == []
    assert requests.get(d.url + "/api/v1/webui").json()["MessageRelay"]["Enabled"] is False


def test_latest_with_a_query_is_the_newest_match(sink):
    """Mailpit's latest?query=: on the message, its raw, headers, parts and views."""
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        for to, subject in (("bob", "first for bob"), ("bob", "second for bob"),
                            ("ann", "for ann")):
            s.sendmail("app@example.com", [to + "@example.com"],
                       "To: %s@example.com\r\nSubject: %s\r\n\r\nbody of %s\r\n"
                       % (to, subject, subject))
    api = sink.url + "/api/v1/message/latest"
    q = {"query": "to:bob@example.com"}
    assert requests.get(api).json()["Subject"] == "for ann"
    assert requests.get(api, params=q).json()["Subject"] == "second for bob"
    assert requests.get(api + "/headers", params=q).json()["Subject"] == ["second for bob"]
    assert b"Subject: second for bob" in requests.get(api + "/raw", params=q).content
    assert requests.get(api + "/part/1", params=q).text == "body of second for bob\r\n"
    assert requests.get(sink.url + "/view/latest.txt", params=q).text == "body of second for bob\r\n"
    assert requests.get(api, params={"query": "subject:first", "tz": "Europe/Berlin"}
                        ).json()["Subject"] == "first for bob"
    assert sink.ok("mail", "show", "latest", "--query", "to:bob@example.com", "--text"
                   )["Text"] == "body of second for bob\r\n"
    for path in ("", "/raw", "/headers"):
        r = requests.get(api + path, params={"query": "subject:nothing"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # Each refusal is logged once, before its answer: a later line closes the count.
    requests.get(sink.url + "/api/v1/message/none-after-latest")
    sink.wait_log("path=/api/v1/message/none-after-latest status=404")
    for path in ("", "/raw", "/headers"):
        assert sink.log().count("path=/api/v1/message/latest%s status=404" % path) == 1
    some = requests.get(api).json()["ID"]
    r = requests.get(sink.url + "/api/v1/message/" + some, params=q)
    assert r.status_code == 422 and "go with the ID latest" in r.json()["error"]["message"]
    r = requests.get(api + "/raw", params={"query": "to:bob", "tz": "Nowhere/Else"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_field"
    r = requests.get(api, params={"query": "before:someday"})
    assert r.status_code == 422 and "'query'" in r.json()["error"]["message"]


def test_send_api_stores_as_the_sink_does(daemons, tmp):
    """Mailpit's POST /api/v1/send: the message it describes, written as MIME and stored."""
    d = daemons(http=True, smtp=True, args=conf(tmp, "max_size = 20K\n")).start()
    waiter = subprocess.Popen([NOTIFYCTL, "-s", d.socket, "--json", "mail", "wait", "--query",
                               "subject:invoice", "--timeout", "20s"], stdout=subprocess.PIPE)
    logo, pdf = os.urandom(300), b"%PDF-1.4 not really"
    req = {"From": {"Name": "Shop", "Email": "shop@example.com"},
           "To": [{"Name": "Jane Doe", "Email": "jane@example.com"}],
           "Cc": [{"Email": "boss@example.com"}], "Bcc": ["audit@example.com"],
           "ReplyTo": [{"Name": "Help", "Email": "help@example.com"}],
           "Subject": "Your invoice — März", "Text": "See attached.",
           "HTML": '<p>See <b>attached</b>.<img src="cid:logo"></p>',
           "Attachments": [
               {"Content": base64.b64encode(logo).decode(), "Filename": "logo.png",
                "ContentType": "image/png", "ContentID": "logo"},
               {"Content": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
                "Filename": "invoice.pdf"},
               {"Content": base64.b64encode("Grüße\n".encode()).decode(), "Filename": "notes"},
               {"Content": base64.b64encode(b"\x00\x01\x02").decode(), "Filename": "blob"}],
           "Tags": ["billing", "march"], "Headers": {"X-Order": "A-17"}}
    r = requests.post(d.url + "/api/v1/send", json=req)
    assert r.status_code == 200 and set(r.json()) == {"ID"}, r.text
    mid = r.json()["ID"]
    # A Message-ID among the Headers is the message's own; else one is made.
    own = requests.post(d.url + "/api/v1/send", json={
        "From": {"Email": "shop@example.com"}, "To": [{"Email": "jane@example.com"}],
        "Subject": "receipt", "Headers": {"message-id": "<r-1@shop.example>"}}).json()["ID"]
    assert requests.get(d.url + "/api/v1/message/" + own).json()["MessageID"] == "r-1@shop.example"
    hdrs = requests.get(d.url + "/api/v1/message/%s/headers" % own).json()
    assert [v for k, v in hdrs.items() if k.lower() == "message-id"] == [["<r-1@shop.example>"]]
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and json.loads(out)["ID"] == mid   # events, as for SMTP
    full = requests.get(d.url + "/api/v1/message/" + mid).json()
    assert full["From"] == {"Name": "Shop", "Address": "shop@example.com"}
    assert full["To"] == [{"Name": "Jane Doe", "Address": "jane@example.com"}]
    assert full["Cc"] == [{"Name": "", "Address": "boss@example.com"}]
    assert full["Bcc"] == [{"Name": "", "Address": "audit@example.com"}]   # the envelope's
    assert full["ReplyTo"] == [{"Name": "Help", "Address": "help@example.com"}]
    assert full["Subject"] == "Your invoice — März" and full["ReturnPath"] == "shop@example.com"
    assert full["Text"].strip() == "See attached." and "<b>attached</b>" in full["HTML"]
    (img,) = full["Inline"]
    assert (img["FileName"], img["ContentType"], img["ContentID"]) == ("logo.png", "image/png", "logo")
    # Sent without a type, each is known by its first bytes, as Mailpit does.
    att, notes, blob = full["Attachments"]
    assert (att["FileName"], att["ContentType"]) == ("invoice.pdf", "application/pdf")
    assert (notes["ContentType"], blob["ContentType"]) == ("text/plain", "application/octet-stream")
    assert att["Checksums"]["SHA256"] == hashlib.sha256(pdf).hexdigest()
    part = requests.get(d.url + "/api/v1/message/%s/part/%s" % (mid, img["PartID"]))
    assert part.content == logo
    hdrs = requests.get(d.url + "/api/v1/message/%s/headers" % mid).json()
    assert hdrs["X-Order"] == ["A-17"] and hdrs["X-Tags"] == ["billing, march"]
    assert "Bcc" not in hdrs and " with HTTP id %s;" % mid in hdrs["Received"][0]
    assert requests.get(d.url + "/api/v1/info").json()["RuntimeStats"]["SMTPAccepted"] == 2

    def refused(body, status, words, **kw):
        r = requests.post(d.url + "/api/v1/send", json=body, **kw) if body is not None else \
            requests.post(d.url + "/api/v1/send", **kw)
        assert r.status_code == status and words in r.json()["error"]["message"], r.text
    refused({"To": [{"Email": "a@b.example"}]}, 422, "'From' must be an object")
    refused({"From": {"Email": "not an address"}}, 422, "invalid From address")
    refused({"From": {"Email": "a@b.example"}, "To": [{"Email": ""}]}, 422, "invalid To address")
    refused({"From": {"Email": "a@b.example"}, "Headers": {"subject": "x"}}, 422,
            "cannot overwrite header")
    for name, value in (("X Bad", "1"), ("X-\u00c9", "1"), ("X-Ok", "two\r\nlines")):
        refused({"From": {"Email": "a@b.example"}, "Headers": {name: value}}, 422, "one-line")
    refused({"From": {"Email": "a@b.example"}, "Attachments": [{"Content": "!!", "Filename": "x"}]},
            422, "must be base64")
    refused({"From": {"Email": "a@b.example"},
             "Attachments": [{"Content": base64.b64encode(os.urandom(30000)).decode(),
                              "Filename": "big.bin"}]}, 413, "over the limit")
    refused(None, 400, "malformed JSON", data="{", headers={"Content-Type": "application/json"})
    assert messages(d)["total"] == 2
    # Each refusal is logged once, before its answer: a later line closes the count.
    requests.get(d.url + "/api/v1/message/none-after-sends")
    d.wait_log("path=/api/v1/message/none-after-sends status=404")
    assert d.log().count("path=/api/v1/send status=") == 10


def test_search_read_delete_and_loopback_rule(sink):
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        s.sendmail("alice@x.com", ["bob@y.com"], "From: Alice <alice@x.com>\r\nTo: bob@y.com\r\n"
                   "Subject: Invoice 42\r\n\r\nPlease pay the invoice\r\n")
        s.sendmail("carol@x.com", ["dan@y.com"], "From: carol@x.com\r\nTo: dan@y.com\r\n"
                   "Subject: Lunch?\r\n\r\nNoon at the usual place\r\n")
        s.sendmail("carol@x.com", ["bob@y.com"], "From: carol@x.com\r\nTo: bob@y.com\r\n"
                   "Subject: Re: Invoice 42\r\n\r\npaid\r\n")
    def subjects(q):
        return sorted(m["Subject"] for m in messages(sink, q)["messages"])
    assert subjects("from:alice") == ["Invoice 42"]
    assert subjects("to:bob@y.com") == ["Invoice 42", "Re: Invoice 42"]
    assert subjects("subject:lunch") == ["Lunch?"]
    assert subjects('"usual place"') == ["Lunch?"]
    assert subjects("invoice -from:alice") == ["Re: Invoice 42"]
    assert messages(sink, "is:unread")["messages_count"] == 3
    ids = [m["ID"] for m in messages(sink, "subject:invoice")["messages"]]
    r = requests.put(sink.url + "/api/v1/messages", json={"IDs": ids, "Read": True})
    # Mailpit's changes answer the text "ok" (notifyctl gives the counts).
    assert r.status_code == 200 and r.text == "ok"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert subjects("is:unread") == ["Lunch?"]
    assert messages(sink)["unread"] == 1
    r = requests.delete(sink.url + "/api/v1/search", params={"query": "from:carol subject:lunch"})
    assert r.text == "ok" and messages(sink)["total"] == 2
    r = requests.delete(sink.url + "/api/v1/messages", json={"IDs": [ids[0]]})
    assert r.text == "ok"
    assert messages(sink)["total"] == 1
    assert requests.get(sink.url + "/api/v1/message/nope").status_code == 404
    # A user token is not a key: the mailbox is the administrator's.
    tok = sink.ok("token", "bob")["token"]
    r = requests.get(sink.url + "/api/v1/messages", headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 403
    r = requests.delete(sink.url + "/api/v1/messages")
    assert r.text == "ok" and messages(sink)["total"] == 0


def test_search_filters_and_read_by_search_as_mailpit(sink):
    """Mailpit's filters: each address field alone, message-id:, tags (none
    here), before: and after: in a time zone; a search that names no
    filter it knows is refused rather than matching nothing; PUT
    /api/v1/messages marks what a Search matches, and nothing when it
    matches nothing."""
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        s.sendmail("ann@x.com", ["bob@y.com", "cat@y.com"],
                   "From: Ann <ann@x.com>\r\nTo: bob@y.com\r\nCc: Cat <cat@y.com>\r\n"
                   "Reply-To: desk@x.com\r\nMessage-ID: <A1.b2@x.com>\r\n"
                   "Subject: Quarterly\r\n\r\nnumbers\r\n")
        s.sendmail("eve@z.com", ["cat@y.com"], "From: eve@z.com\r\nTo: cat@y.com\r\n"
                   "Message-ID: <other@z.com>\r\nSubject: Hello\r\n\r\nhi\r\n")

    def subjects(q, **params):
        r = requests.get(sink.url + "/api/v1/search", params=dict(query=q, **params))
        assert r.status_code == 200, r.text
        return sorted(m["Subject"] for m in r.json()["messages"])
    assert subjects("to:cat") == ["Hello"]             # To alone, as Mailpit's to:
    assert subjects("cc:cat") == ["Quarterly"]
    assert subjects("bcc:cat") == []
    assert subjects("reply-to:desk@x.com") == ["Quarterly"]
    assert subjects("addressed:cat@y.com") == ["Hello", "Quarterly"]
    assert subjects("addressed:desk") == ["Quarterly"]
    assert subjects("message-id:a1.b2@x.com") == ["Quarterly"]
    assert subjects("message-id:<other@z.com>") == ["Hello"]
    assert subjects("message-id:a1") == []
    assert subjects("is:tagged") == [] and subjects("tag:x") == []
    assert subjects("!is:tagged") == ["Hello", "Quarterly"]
    # One wall-clock time, an hour after both arrived in UTC: in UTC they
    # are before it, in Tokyo (9 hours ahead, no summer time) after it.
    newest = max(m["Created"] for m in messages(sink)["messages"])
    t = datetime.datetime.fromisoformat(newest.replace("Z", "+00:00")) + datetime.timedelta(hours=1)
    wall = t.strftime("%Y-%m-%d %H:%M")
    assert subjects('before:"%s"' % wall, tz="UTC") == ["Hello", "Quarterly"]
    assert subjects('after:"%s"' % wall, tz="UTC") == []
    assert subjects('after:"%s"' % wall, tz="Asia/Tokyo") == ["Hello", "Quarterly"]
    assert subjects("after:2000/01/01") == ["Hello", "Quarterly"]
    assert subjects("before:2000-01-01") == [] and subjects("-before:2000-01-01") == ["Hello",
                                                                                     "Quarterly"]
    for q, params in (("after:2024-02-30", {}), ("before:soon", {}), ("after:2024-01-01",
                                                                      {"tz": "Mars/Base"})):
        r = requests.get(sink.url + "/api/v1/search", params=dict(query=q, **params))
        assert r.status_code == 422, (q, r.text)
    # Read by search: only the matches; a search that matches nothing marks nothing.
    r = requests.put(sink.url + "/api/v1/messages", json={"Search": "from:ann", "Read": True})
    assert r.status_code == 200 and r.text == "ok"
    assert subjects("is:read") == ["Quarterly"]
    r = requests.put(sink.url + "/api/v1/messages", json={"Search": "from:nobody", "Read": True})
    assert r.text == "ok" and subjects("is:unread") == ["Hello"]
    r = requests.put(sink.url + "/api/v1/messages", json={"Search": "x", "IDs": ["a"]})
    assert r.status_code == 422


def test_retention(daemons, tmp):
    import asyncio
    import websockets
    d = daemons(http=True, smtp=True, args=conf(tmp, "mail_max = 3\n")).start()
    port = smtp_port(d)

    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/api/events" % d.port) as ws:
            # Retention runs on every 64th message: after 64, only the newest 3 remain.
            with smtplib.SMTP("127.0.0.1", port) as s:
                for i in range(64):
                    s.sendmail("a@x", ["b@y"], "Subject: m%d\r\n\r\nx\r\n" % i)
            frames = []
            while not frames or frames[-1]["Type"] != "prune":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            # As Mailpit: the pruning is announced (its clients reload), then the stats.
            assert [f["Data"]["Subject"] for f in frames if f["Type"] == "new"] == \
                ["m%d" % i for i in range(64)]
            assert frames[-1] == {"Type": "prune", "Data": None}
            stats = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert stats["Type"] == "stats" and stats["Data"]["Total"] == 3
            await ws.close()
            assert ws.close_code == 1000        # notifyd answered the close frame
    asyncio.run(go())
    assert [m["Subject"] for m in messages(d)["messages"]] == ["m63", "m62", "m61"]


def test_notifyctl_mail_and_watch(sink):
    watch = subprocess.Popen([NOTIFYCTL, "-s", sink.socket, "--json", "watch"],
                             stdout=subprocess.PIPE, text=True)
    sink.wait_log("watch started")
    waiter = subprocess.Popen([NOTIFYCTL, "-s", sink.socket, "--json", "mail", "wait",
                               "--query", "subject:welcome", "--timeout", "20s"],
                              stdout=subprocess.PIPE, text=True)
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        s.sendmail("a@x", ["b@y"], "Subject: other\r\n\r\nx\r\n")
        s.sendmail("a@x", ["new@user.com"], "Subject: Welcome aboard\r\n\r\nHello!\r\n")
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0
    got = json.loads(out)
    assert got["Subject"] == "Welcome aboard"
    # Already there: returns at once. Never coming: exit 1.
    assert sink.ok("mail", "wait", "--query", "subject:welcome")["ID"] == got["ID"]
    rc, _, err = sink.ctl("mail", "wait", "--query", "subject:never", "--timeout", "1s")
    assert rc == 1 and "no matching message" in err
    listed = sink.ok("mail", "list", "--query", "subject:welcome")
    assert listed["messages_count"] == 1
    shown = sink.ok("mail", "show", got["ID"], "--text")
    assert shown == {"ID": got["ID"], "Text": "Hello!\r\n"}
    p = subprocess.run([NOTIFYCTL, "-s", sink.socket, "mail", "show", got["ID"], "--raw"],
                       capture_output=True)
    assert p.stdout.startswith(b"Return-Path: ") and p.stdout.endswith(b"Hello!\r\n")
    p = subprocess.run([NOTIFYCTL, "-s", sink.socket, "mail", "show", "latest"],
                       capture_output=True, text=True)
    assert "Subject   Welcome aboard" in p.stdout
    # Shown: read. A boolean flag takes =false to mark it unread again.
    assert messages(sink)["unread"] == 1
    sink.ok("mail", "read", got["ID"], "--read=false")
    assert messages(sink)["unread"] == 2
    sink.ok("mail", "read", "--read=true")
    assert messages(sink)["unread"] == 0
    rc, _, err = sink.ctl("mail", "read", "--read=no")
    assert rc == 2 and "--read is true or false, not 'no'" in err
    assert sink.ok("mail", "clear", "--query", "subject:other") == {"deleted": 1}
    assert sink.ok("mail", "clear", got["ID"], "nosuchid") == {"deleted": 1}
    watch.terminate()
    lines = [json.loads(l) for l in watch.communicate(timeout=10)[0].splitlines()]
    mails = [l for l in lines if l["type"] == "mail"]
    assert [m["data"]["Subject"] for m in mails] == ["other", "Welcome aboard"]


def test_info_and_events_stream(sink):
    import asyncio
    import websockets

    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/api/events" % sink.port) as ws:
            with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
                s.sendmail("a@x", ["b@y"], "Subject: live\r\n\r\nhello\r\n")
            new = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert new["Type"] == "new" and new["Data"]["Subject"] == "live"
            stats = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert stats["Type"] == "stats" and stats["Data"]["Total"] == 1
            requests.delete(sink.url + "/api/v1/messages", json={"IDs": [new["Data"]["ID"]]})
            gone = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert gone == {"Type": "delete", "Data": [new["Data"]["ID"]]}
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["Data"]["Total"] == 0
            with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
                s.sendmail("a@x", ["b@y"], "Subject: again\r\n\r\nhello\r\n")
            await asyncio.wait_for(ws.recv(), 10)
            await asyncio.wait_for(ws.recv(), 10)
            requests.delete(sink.url + "/api/v1/messages")
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"Type": "truncate", "Data": None}
    asyncio.run(go())
    info = requests.get(sink.url + "/api/v1/info").json()
    assert info["Version"] == "0.1.0" and info["Messages"] == 0
    assert info["RuntimeStats"]["SMTPAccepted"] == 2 and info["DatabaseSize"] > 0
    assert "notifyd_smtp_accepted_total 2" in requests.get(sink.url + "/metrics").text
    # A user token may not watch the mailbox.
    tok = sink.ok("token", "u")["token"]

    async def refused():
        try:
            async with websockets.connect("ws://127.0.0.1:%d/api/events" % sink.port,
                                          extra_headers={"Authorization": "Bearer " + tok}):
                return 101
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
    assert asyncio.run(refused()) == 403


def test_starttls(daemons, tmp):
    import ssl
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert], check=True, capture_output=True)
    d = daemons(http=True, smtp=True, args=conf(tmp, "tls_cert = %s\ntls_key = %s\nauth = any\n"
                                                     % (cert, key))).start()
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", d.smtp_port) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn("starttls")   # once is enough
        s.login("u", "p")
        s.sendmail("a@x", ["b@y"], "Subject: over tls\r\n\r\nsecret\r\n")
    m = messages(d)["messages"]
    assert [x["Subject"] for x in m] == ["over tls"]
    # Plain text pipelined after STARTTLS is refused, not read as if encrypted.
    c = Dialogue(d.smtp_port)
    c.code()
    c.cmd("EHLO x")
    c.send("HELP\r\n")
    assert c.reply()[-1].endswith(" QUIT HELP AUTH STARTTLS")
    c.send(b"STARTTLS\r\nMAIL FROM:<a@x>\r\n")
    assert c.code() == 501
    c.close()
    # A certificate that cannot be loaded stops notifyd at start, naming it.
    bad = daemons(http=False, smtp=True, data_dir=os.path.join(tmp, "d2"),
                  socket_path=os.path.join(tmp, "bad.sock"),
                  args=conf(tmp, "tls_cert = /nonexistent.pem\ntls_key = %s\n" % key))
    bad.start(wait=False)
    assert bad.proc.wait(10) == 1
    bad.reader.join(5)
    assert "/nonexistent.pem" in bad.log()


def test_parallel_pipelined_load_with_smtp_source(sink):
    """postfix's smtp-source: 16 sessions at once, pipelined, 5 KiB each."""
    p = subprocess.run(["smtp-source", "-s", "16", "-m", "320", "-l", "5120",
                        "-f", "load@example.com", "-t", "sink@example.com",
                        "127.0.0.1:%d" % sink.smtp], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    page = messages(sink)
    assert page["total"] == 320
    sizes = {m["Size"] for m in page["messages"]}
    assert all(s > 5120 for s in sizes)


def test_malformed_mime_is_stored_and_shown(sink):
    broken = (b"From: =?utf-8?b?not base64?= <x@y>\r\nSubject: caf\xe9 \xff\xfe\r\n"
              b"Content-Type: multipart/mixed; boundary=\"nowhere\"\r\n\r\n"
              b"--elsewhere\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
              b"no closing boundary at all\r\n")
    d = Dialogue(sink.smtp)
    d.code()
    d.send(b"EHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    assert [d.code() for _ in range(4)] == [250, 250, 250, 354]
    d.send(broken + b".\r\n")
    assert d.code() == 250
    d.close()
    m = messages(sink)["messages"]
    assert len(m) == 1 and isinstance(m[0]["Subject"], str)
    full = requests.get(sink.url + "/api/v1/message/" + m[0]["ID"])
    assert full.status_code == 200 and isinstance(full.json()["Text"], str)
    raw = requests.get(sink.url + "/api/v1/message/%s/raw" % m[0]["ID"]).content
    assert raw.split(b"\r\n", 2)[2] == broken


def test_client_not_reading_replies_holds_up_no_one(sink):
    """Replies a client does not read are kept (bounded); others are served meanwhile."""
    slow = Dialogue(sink.smtp)
    assert slow.code() == 220
    n = 60000   # far more replies than any socket buffer holds
    sender = threading.Thread(target=slow.send, args=(b"NOOP\r\n" * n + b"QUIT\r\n",))
    sender.start()
    with smtplib.SMTP("127.0.0.1", sink.smtp, timeout=10) as s:
        s.sendmail("a@x", ["b@y"], "Subject: meanwhile\r\n\r\nserved\r\n")
    assert [m["Subject"] for m in messages(sink)["messages"]] == ["meanwhile"]
    codes = [slow.code() for _ in range(n + 1)]
    sender.join(10)
    assert codes.count(250) == n and codes[-1] == 221
    assert slow.reply() is None                     # then closed
    slow.close()


def test_big_message_parsed_off_the_session_loop(sink):
    """A message too big to parse in the session loop is parsed before it is stored."""
    body = ("line of a big message\r\n" * 16000)   # ~370 KiB
    msg = EmailMessage()
    msg["Subject"] = "big one"
    msg["From"] = "Big <big@x>"
    msg["To"] = "b@y"
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", sink.smtp, timeout=30) as s:
        s.send_message(msg)
        s.sendmail("a@x", ["c@y"], "Subject: small after\r\n\r\nx\r\n")
    page = messages(sink)
    by = {m["Subject"]: m for m in page["messages"]}
    assert set(by) == {"big one", "small after"}
    assert by["big one"]["Size"] > 256 * 1024
    assert by["big one"]["From"] == {"Name": "Big", "Address": "big@x"}
    full = requests.get(sink.url + "/api/v1/message/%s" % by["big one"]["ID"]).json()
    assert full["Text"].replace("\r\n", "\n") == body.replace("\r\n", "\n")
    assert messages(sink, query="big")["messages"][0]["Subject"] == "big one"


def test_mail_wait_finds_the_newest_match(sink):
    """Of several matches the newest, there already or arriving while it waits."""
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        s.sendmail("a@x", ["b@y"], "Subject: Welcome\r\n\r\nx\r\n")
        s.sendmail("a@x", ["b@y"], "Subject: Welcome back\r\n\r\nx\r\n")
    assert sink.ok("mail", "wait", "--query", "subject:welcome")["Subject"] == "Welcome back"
    # Waiting: after its first look it scans only what arrived since, and
    # finds the match among it, whatever else came with it.
    waiter = subprocess.Popen([NOTIFYCTL, "-s", sink.socket, "--json", "mail", "wait",
                               "--query", "subject:third", "--timeout", "20s"],
                              stdout=subprocess.PIPE, text=True)
    sink.wait_log('msg="mail wait started" query="subject:third"')
    with smtplib.SMTP("127.0.0.1", sink.smtp) as s:
        for i in range(3):
            s.sendmail("a@x", ["b@y"], "Subject: filler %d\r\n\r\nx\r\n" % i)
        s.sendmail("a@x", ["b@y"], "Subject: the third welcome\r\n\r\nx\r\n")
        s.sendmail("a@x", ["b@y"], "Subject: filler after\r\n\r\nx\r\n")
    out, _ = waiter.communicate(timeout=30)
    assert json.loads(out)["Subject"] == "the third welcome"
