// Holds the app's secrets (see infra/SETTINGS.md). The template creates the vault but never the secret
// values: the operator sets them once (docs/operations.md), so they never pass through azd's .env file or
// deployment history, and re-running `azd provision` cannot roll a rotated secret back.
param name string
param location string
param tags object
param logAnalyticsWorkspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the Flex Consumption app has no VNet integration, and App Service Key Vault references are not a trusted service; access is still RBAC-only.
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109: the app resolves references over the public endpoint.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // RBAC mode: who may read secrets is an Azure role assignment (infra/rbac.bicep), not an access policy.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or changed which secret, kept with the app's logs.
resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
