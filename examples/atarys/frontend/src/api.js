// The backend's JSON API, on the same origin as the page.

// An error whose message is fit to show: the API's own `error` text when
// it sent one, else the HTTP status.
export class ApiError extends Error {
  constructor(message, status, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError('le serveur ne répond pas', 0);
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An error page from the proxy, not JSON: keep the status only.
  }
  if (!res.ok) {
    const msg = data && data.error ? data.error : `erreur HTTP ${res.status}`;
    throw new ApiError(msg, res.status, data && data.field);
  }
  return data;
}

export const listChantiers = () => request('GET', '/api/chantiers');
export const createChantier = (fields) => request('POST', '/api/chantiers', fields);
export const health = () => request('GET', '/api/health');
