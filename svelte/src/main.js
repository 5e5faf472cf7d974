import { mount } from "svelte";
import App from "./App.svelte";
import "./app.css";

// The page's config (defaults included) comes from Python, in a JSON <script> tag.
const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("rlv-config")).textContent);
mount(App, { target: /** @type {HTMLElement} */ (document.getElementById("app")), props: { config } });
