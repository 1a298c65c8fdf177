// auth.js: the register and log-in forms.

import { $, el, TEXT, setText, setCloseReason } from './dom.js';
import { api, errorMessage, fieldErrors } from './api.js';

// showAuth shows the login (or the register) form in place of the chat.
export function showAuth(mode) {
  const register = mode === 'register';
  const form = register ? el.registerForm : el.loginForm;
  const other = register ? el.loginForm : el.registerForm;
  form.querySelector('.creds-slot').appendChild(el.creds); // the fields keep their ids
  el.password.setAttribute('autocomplete', register ? 'new-password' : 'current-password');
  form.hidden = false;
  other.hidden = true;
  el.chat.hidden = true;
  el.auth.hidden = false;
  clearAuthErrors();
  document.title = register ? 'Create account · Switchboard' : 'Log in · Switchboard';
}

export function setAuthNotice(text) {
  setText(el.authNotice, text);
}

function clearAuthErrors() {
  setText(el.authError, '');
  for (const name of ['username', 'password', 'email']) {
    setText($(name + '-error'), '');
    el[name].removeAttribute('aria-invalid');
  }
}

function showFieldErrors(data) {
  const fields = fieldErrors(data);
  for (const name of Object.keys(fields)) {
    setText($(name + '-error'), fields[name]);
    el[name].setAttribute('aria-invalid', 'true');
  }
  return Object.keys(fields).length > 0;
}

function setBusy(form, busy) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = busy;
  form.setAttribute('aria-busy', busy ? 'true' : 'false');
}

// post sends a form's body, keeping the form busy meanwhile; it resolves to
// the response, or null (with the error shown) if the server is unreachable.
async function post(form, path, body) {
  setBusy(form, true);
  try {
    return await api('POST', path, body);
  } catch (err) {
    setText(el.authError, TEXT.unreachable);
    return null;
  } finally {
    setBusy(form, false);
  }
}

// initAuth wires the forms. onLogin(token) starts the session and returns
// false for a token the page cannot use.
export function initAuth(onLogin) {
  el.showRegister.addEventListener('click', function (e) {
    e.preventDefault();
    setAuthNotice('');
    showAuth('register');
    el.username.focus();
  });

  el.showLogin.addEventListener('click', function (e) {
    e.preventDefault();
    setAuthNotice('');
    showAuth('login');
    el.username.focus();
  });

  el.registerForm.addEventListener('submit', async function (e) {
    e.preventDefault();
    clearAuthErrors();
    setAuthNotice('');
    const body = {
      username: el.username.value.trim(),
      password: el.password.value,
      email: el.email.value.trim(),
    };
    const res = await post(el.registerForm, '/api/users/', body);
    if (!res) return;
    if (res.ok) {
      const name = res.data && typeof res.data.username === 'string' ? res.data.username : body.username;
      el.username.value = '';
      el.password.value = '';
      el.email.value = '';
      showAuth('login');
      setAuthNotice('Account created for ' + name + '. You can log in now.');
      el.username.focus();
      return;
    }
    const shown = showFieldErrors(res.data);
    const fallback = res.status === 409 ? 'That username is already taken.' : 'Could not create the account.';
    setText(el.authError, errorMessage(res.data, shown ? '' : fallback));
  });

  el.loginForm.addEventListener('submit', async function (e) {
    e.preventDefault();
    clearAuthErrors();
    const body = { username: el.username.value.trim(), password: el.password.value };
    const res = await post(el.loginForm, '/api-token-auth/', body);
    if (!res) return;
    if (res.ok && res.data && typeof res.data.token === 'string' && onLogin(res.data.token)) {
      // Empty fields after a later logout, so typing there never appends to old text.
      el.username.value = '';
      el.password.value = '';
      setAuthNotice('');
      setCloseReason('');
      return;
    }
    showFieldErrors(res.data);
    setText(el.authError, errorMessage(res.data, 'Could not log in.'));
  });
}
