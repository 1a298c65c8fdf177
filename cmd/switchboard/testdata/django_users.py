#!/usr/bin/python3
"""A throwaway Django project for cmd/switchboard/importusers_test.go.

Runs on Debian's python3-django (3.2), python3-argon2, python3-bcrypt and
python3-jwt. Settings are in code; the database is WORKDIR/db.sqlite3.

  django_users.py create WORKDIR   migrate, have Django create one user per
                                   hasher (and the odd cases), write
                                   WORKDIR/dump.json with dumpdata; print
                                   the users as JSON
  django_users.py change WORKDIR   change some users the way a running
                                   Django site would, rewrite dump.json;
                                   print the changes as JSON
  django_users.py token SECRET ID USERNAME EMAIL
                                   print a token in rest_framework_jwt's
                                   shape (user_id, username, email, exp; no
                                   orig_iat), signed by PyJWT
"""
import base64
import hashlib
import json
import os
import sys
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # the crypt module

# Shorter than switchboard's 32 characters, as many SECRET_KEYs are.
SECRET_KEY = "django-insecure-tést-key-1234"

from django.contrib.auth import hashers  # noqa: E402  (needs no settings)


# Django's hashers at their own formats, with costs low enough for a test
# run under the race detector (the parameters are read from each hash).
class PBKDF2(hashers.PBKDF2PasswordHasher):
    iterations = 2000


class PBKDF2SHA1(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1500


class Argon2(hashers.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 256
    parallelism = 2


class BCryptSHA256(hashers.BCryptSHA256PasswordHasher):
    rounds = 5


class BCrypt(hashers.BCryptPasswordHasher):
    rounds = 4


HASHERS = [
    "__main__.PBKDF2",  # the default: set_password uses it
    "__main__.PBKDF2SHA1",
    "__main__.Argon2",
    "__main__.BCryptSHA256",
    "__main__.BCrypt",
    "django.contrib.auth.hashers.SHA1PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.UnsaltedSHA1PasswordHasher",
    "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher",
    "django.contrib.auth.hashers.CryptPasswordHasher",
]


def setup(workdir):
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY=SECRET_KEY,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(workdir, "db.sqlite3")}},
        PASSWORD_HASHERS=HASHERS,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


def password_for(username):
    return "pw-" + username + "-✓ ok"


def scrypt_hash(password, salt, n=64, r=8, p=2):
    """Django 4.2's ScryptPasswordHasher.encode, which Django 3.2 lacks."""
    h = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=0, dklen=64)
    h = base64.b64encode(h).decode("ascii").strip()
    return "%s$%d$%s$%d$%d$%s" % ("scrypt", n, salt, r, p, h)


def argon2i_hash(password, salt):
    """Argon2PasswordHasher.encode with type I (Django 1.10-2.x wrote argon2i)."""
    import argon2

    data = argon2.low_level.hash_secret(
        password.encode(), salt.encode(), time_cost=2, memory_cost=128, parallelism=1,
        hash_len=argon2.DEFAULT_HASH_LENGTH, type=argon2.low_level.Type.I,
    )
    return "argon2" + data.decode("ascii")


def dumpdata(workdir):
    from django.core.management import call_command

    call_command("dumpdata", "auth.user", indent=1, output=os.path.join(workdir, "dump.json"), verbosity=0)


def create(workdir):
    setup(workdir)
    from django.contrib.auth.hashers import check_password, make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    users = []

    def add(kind, username, hasher=None, encoded=None, email=None, **fields):
        pw = password_for(username)
        u = User(username=username, email=email if email is not None else username + "@example.com", **fields)
        if encoded is not None:
            u.password = encoded
        elif hasher == "unusable":
            u.set_unusable_password()
        else:
            u.password = make_password(pw, hasher=hasher or "default")
        u.save()  # no validation: Django's own database may hold such rows
        if not u.password.startswith(("scrypt$", "!")):  # Django 3.2 has no scrypt
            assert check_password(pw, u.password), (username, u.password)  # Django verifies it
        users.append({
            "kind": kind, "id": u.id, "username": username, "password": pw, "hash": u.password,
            "email": u.email, "is_active": u.is_active, "is_staff": u.is_staff, "is_superuser": u.is_superuser,
        })

    # id 1: the test registers a switchboard user before importing, which
    # takes switchboard id 1 under the name "clash" (see the last user).
    add("clash_id", "first")
    add("hasher", "u_pbkdf2_sha256", "pbkdf2_sha256")
    add("hasher", "u_pbkdf2_sha1", "pbkdf2_sha1")
    add("hasher", "u_argon2", "argon2")
    add("hasher", "u_bcrypt_sha256", "bcrypt_sha256")
    add("hasher", "u_bcrypt", "bcrypt")
    add("hasher", "u_sha1", "sha1")
    add("hasher", "u_md5", "md5")
    add("hasher", "u_unsalted_sha1", "unsalted_sha1")
    add("hasher", "u_unsalted_md5", "unsalted_md5")
    md5 = hashlib.md5(password_for("u_md5_dollar").encode()).hexdigest()
    add("hasher", "u_md5_dollar", encoded="md5$$" + md5)
    add("hasher", "u_scrypt", encoded=scrypt_hash(password_for("u_scrypt"), "scryptsalt1234"))
    add("hasher", "u_argon2i", encoded=argon2i_hash(password_for("u_argon2i"), "argon2isalt123"))
    add("unsupported", "u_crypt", "crypt")
    add("hasher", "éva")
    add("superuser", "root", is_staff=True, is_superuser=True)
    add("superuser", "boss", is_staff=False, is_superuser=True)
    add("inactive", "sleepy", is_active=False)
    add("unusable", "nopass", "unusable")
    add("bad_username", "has space")
    add("bad_username", "ｆｕｌｌ")  # full width: NFKC makes it "full"
    add("bad_email", "bademail", email="not an email")
    add("clash_name", "clash")

    # last_login and date_joined as Django keeps them.
    User.objects.filter(username="u_pbkdf2_sha256").update(last_login="2021-03-04T05:06:07.123456Z")
    dumpdata(workdir)
    for u in users:
        v = User.objects.get(id=u["id"])
        u["date_joined"] = v.date_joined.isoformat()
        u["last_login"] = v.last_login.isoformat() if v.last_login else None
    json.dump({"secret": SECRET_KEY, "users": users}, sys.stdout)


def change(workdir):
    setup(workdir)
    from django.contrib.auth.models import User

    u = User.objects.get(username="u_md5")
    u.set_password("a new password ✓")  # the default hasher: pbkdf2_sha256
    u.save()
    User.objects.filter(username="u_sha1").update(email="new-sha1@example.com")
    User.objects.filter(username="éva").update(username="éva2")
    User.objects.filter(username="boss").update(is_superuser=False)
    dumpdata(workdir)
    json.dump({"new_password": {"u_md5": "a new password ✓"}, "renamed": {"éva": "éva2"},
               "email": {"u_sha1": "new-sha1@example.com"}, "not_staff": ["boss"]}, sys.stdout)


def token(secret, user_id, username, email):
    import jwt

    payload = {"user_id": int(user_id), "username": username, "email": email, "exp": int(time.time()) + 300}
    tok = jwt.encode(payload, secret, algorithm="HS256")
    print(tok.decode() if isinstance(tok, bytes) else tok)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "create":
        create(sys.argv[2])
    elif cmd == "change":
        change(sys.argv[2])
    elif cmd == "token":
        token(*sys.argv[2:6])
    else:
        sys.exit("unknown command " + cmd)
