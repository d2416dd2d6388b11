import { createChantier, health, listChantiers } from './api.js';
import './style.css';

const $ = (id) => document.getElementById(id);
const form = $('new-chantier');
const STATUS_LABELS = { planned: 'prévu', active: 'en cours', done: 'terminé' };

function showError(el, message) {
  el.textContent = message || '';
  el.hidden = !message;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  return td;
}

function render(chantiers) {
  const rows = chantiers.map((c) => {
    const tr = document.createElement('tr');
    const when = new Date(c.created_at);
    tr.append(
      cell(String(c.id)),
      cell(c.name),
      cell(c.client ?? '—'),
      cell(STATUS_LABELS[c.status] ?? c.status),
      cell(isNaN(when) ? c.created_at : when.toLocaleString()),
    );
    tr.dataset.status = c.status;
    return tr;
  });
  $('chantiers').replaceChildren(...rows);
  $('empty').hidden = chantiers.length > 0;
}

async function refresh() {
  try {
    render(await listChantiers());
    showError($('list-error'), '');
  } catch (err) {
    showError($('list-error'), `Impossible de charger les chantiers : ${err.message}`);
  }
}

async function showHealth() {
  try {
    const h = await health();
    $('health').textContent = `environnement ${h.env} · base de données ${h.database}`;
  } catch (err) {
    $('health').textContent =
      err.status === 503 ? 'base de données injoignable' : `service indisponible : ${err.message}`;
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const name = String(data.get('name') || '').trim();
  if (!name) {
    showError($('form-error'), 'Le nom est obligatoire.');
    return;
  }
  const fields = { name, status: data.get('status') };
  const client = String(data.get('client') || '').trim();
  if (client) fields.client = client;

  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await createChantier(fields);
    showError($('form-error'), '');
    form.reset();
    await refresh();
  } catch (err) {
    showError($('form-error'), `Création refusée : ${err.message}`);
  } finally {
    button.disabled = false;
  }
});

showHealth();
refresh();
